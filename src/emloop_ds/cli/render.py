"""Render command results: rich tables and warnings for people, JSON for programs."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emloop_ds.core.schema import DatasetInfo

__all__ = ["dataset_info_json", "print_json", "render_dataset_info", "warn_ragged"]


def print_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout."""
    click.echo(json.dumps(data, indent=2))


def _json_number(value: float | int | bool | None) -> float | int | bool | None:
    # JSON has no NaN or infinity; an unrepresentable bound is reported as absent.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dataset_info_json(info: DatasetInfo) -> dict[str, Any]:
    """Return the JSON form of ``emloop dataset info``."""
    return {
        "dataset": info.dataset,
        "streams": [
            {
                "name": stream.name,
                "error": stream.error,
                "sources": [
                    {
                        "name": source.name,
                        "dtype": source.dtype,
                        "shape": list(source.shape),
                        "min": _json_number(source.min),
                        "max": _json_number(source.max),
                        "ragged": source.ragged,
                    }
                    for source in stream.sources
                ],
            }
            for stream in info.streams
        ],
    }


def warn_ragged(info: DatasetInfo) -> None:
    """Warn on stderr about every ragged source and broken stream."""
    for stream in info.streams:
        if stream.error is not None:
            click.echo(f"warning: stream `{stream.name}` is broken: {stream.error}", err=True)
        for source in stream.sources:
            if source.ragged:
                click.echo(
                    f"warning: source `{source.name}` of stream `{stream.name}` is ragged "
                    "(its examples differ in length or shape)",
                    err=True,
                )


def render_dataset_info(info: DatasetInfo) -> None:
    """Print a table per stream on stdout."""
    console = Console(file=sys.stdout)
    if not info.streams:
        console.print(escape(f"{info.dataset} has no streams (no public <name>_stream methods)"))
    for stream in info.streams:
        if stream.error is not None:
            console.print(
                f"[bold]{escape(stream.name)}[/bold] stream: [red]broken[/red]: {escape(stream.error)}"
            )
            continue
        table = Table(title=escape(f"{stream.name} stream"), title_justify="left")
        for column in ("source", "dtype", "shape", "range", "ragged"):
            table.add_column(column)
        for source in stream.sources:
            value_range = "" if source.min is None else f"{source.min} – {source.max}"
            table.add_row(
                escape(source.name),
                escape(source.dtype),
                str(list(source.shape)),
                value_range,
                "[yellow]yes[/yellow]" if source.ragged else "no",
            )
        console.print(table)
