"""Declare the arguments and options that several commands share, so each is spelled once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["VERBOSE_KEY", "config_argument", "json_option", "overrides_argument", "verbose_option"]

VERBOSE_KEY = "emloop_ds.verbose"
"""Key in ``click.Context.meta`` (shared by all nested contexts) set by ``--verbose``."""

F = TypeVar("F", bound=Callable[..., Any])


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[VERBOSE_KEY] = True


def verbose_option(function: F) -> F:
    """Add ``--verbose``: show tracebacks of errors."""
    return click.option(
        "--verbose",
        "-v",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbose,
        help="Show the full traceback of an error.",
    )(function)


def json_option(function: F) -> F:
    """Add ``--json``: print the result as JSON on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")(
        function
    )


def config_argument(function: F) -> F:
    """Add the CONFIG argument: an emloop YAML config, or a folder holding config.yaml."""
    return click.argument("config", type=click.Path(path_type=Path))(function)


def overrides_argument(function: F) -> F:
    """Add trailing ``KEY=VALUE`` arguments that override the config."""
    return click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")(function)
