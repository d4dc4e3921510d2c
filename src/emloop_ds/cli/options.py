"""Declare the arguments and options that several commands share, so each is spelled once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = [
    "VERBOSE_KEY",
    "cache_dir_option",
    "check_engine_options",
    "config_argument",
    "engine_options",
    "json_option",
    "overrides_argument",
    "verbose_option",
]

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


def engine_options(function: F) -> F:
    """Add ``--workers``, ``--engine``, ``--scheduler`` and ``--timeout``: where the stream's shards run."""
    options = (
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Worker processes that each run a shard of the stream (it must take a `shard` parameter); "
            "0 reads in this process.",
        ),
        click.option(
            "--engine",
            type=click.Choice(["processes", "dask"]),
            default="processes",
            show_default=True,
            help="Where the --workers shards run: worker processes on this machine, or a Dask cluster "
            "(pip install 'emloop-ds[dask]').",
        ),
        click.option(
            "--scheduler",
            default=None,
            metavar="ADDRESS",
            help="With --engine dask, the scheduler to use, e.g. tcp://host:8786.  "
            "[default: Dask's configured scheduler, else a local cluster of --workers processes]",
        ),
        click.option(
            "--timeout",
            "scheduler_timeout_s",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="With --engine dask, seconds to wait for the scheduler and its workers.  [default: 10]",
        ),
    )
    for option in reversed(options):
        function = option(function)
    return function


def check_engine_options(
    engine: str, workers: int, scheduler: str | None, scheduler_timeout_s: float | None
) -> None:
    """Refuse --engine dask without --workers, and the Dask options without --engine dask."""
    if engine == "dask" and workers == 0:
        raise click.UsageError("--engine dask runs shards of the stream: add --workers N with N of 1 or more")
    if engine != "dask" and (scheduler is not None or scheduler_timeout_s is not None):
        raise click.UsageError("--scheduler and --timeout are for the Dask engine: add --engine dask")


def cache_dir_option(function: F) -> F:
    """Add ``--cache-dir``: the root of the stream caches instead of the default."""
    return click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The root folder of the stream caches.  "
        "[default: $EMLOOP_DS_CACHE, else $XDG_CACHE_HOME/emloop-ds, else ~/.cache/emloop-ds]",
    )(function)
