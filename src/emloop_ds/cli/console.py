"""Make the rich console on stdout, which degrades to ASCII where the terminal cannot encode Unicode."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from emloop_ds.cli.stdout import ascii_safe_stdout

__all__ = ["stdout_console"]


def stdout_console(**options: Any) -> Console:
    """Return a rich console on stdout that degrades to ASCII where stdout cannot encode Unicode."""
    return Console(file=ascii_safe_stdout(), **options)  # NOTE [ASCII output] (cli/stdout)
