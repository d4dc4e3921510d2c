"""Render command results: rich tables and warnings for people, JSON for programs."""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from emloop_ds.core.fetch import FileResult
from emloop_ds.core.schema import DatasetInfo

__all__ = [
    "dataset_info_json",
    "download_results_json",
    "print_json",
    "render_dataset_info",
    "render_download_results",
    "report_download_failures",
    "warn_ragged",
]


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


_STATUS_STYLES = {"failed": "red", "already complete": "dim", "resumed": "yellow"}


def download_results_json(results: Sequence[FileResult]) -> list[dict[str, Any]]:
    """Return the JSON form of ``emloop dataset download``: one object per file."""
    return [
        {
            "filename": result.filename,
            "url": result.url,
            "status": result.status,
            "size_bytes": result.size_bytes,
            "elapsed_s": round(result.elapsed_s, 3),
            "checksum": None
            if result.checksum is None
            else {
                "algorithm": result.checksum.algorithm,
                "digest": result.checksum.digest,
            },
            "error": None if result.error is None else str(result.error),
        }
        for result in results
    ]


def render_download_results(results: Sequence[FileResult]) -> None:
    """Print a table of the files with their size, time and status on stdout."""
    table = Table()
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("time", justify="right")
    table.add_column("status")
    for result in results:
        size = "" if result.size_bytes is None else _format_bytes(result.size_bytes)
        style = _STATUS_STYLES.get(result.status, "green")
        # Text cells are neither parsed as markup nor searched for emoji codes: ~30% of the printing time.
        table.add_row(
            Text(result.filename),
            Text(size),
            Text(f"{result.elapsed_s:.1f} s"),
            Text.assemble((result.status, style)),
        )
    Console(file=sys.stdout, emoji=False).print(table)


def report_download_failures(results: Sequence[FileResult], verbose: bool) -> None:
    """Print one line per failed file on stderr (after its traceback if ``verbose``)."""
    for result in results:
        if result.error is not None:
            if verbose:
                traceback.print_exception(result.error, file=sys.stderr)
            click.echo(f"error: {result.error}", err=True)


def _format_bytes(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    size = n_bytes / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
