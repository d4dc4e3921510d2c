"""Render command results: rich tables and warnings for people, JSON for programs."""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from emloop_ds.core.schema import DatasetInfo

if TYPE_CHECKING:  # each command imports only its own core modules
    from emloop_ds.core.download.check import CheckResult
    from emloop_ds.core.download.fetch import FileResult
    from emloop_ds.core.throughput import ThroughputReport

__all__ = [
    "MAX_TABLE_ROWS",
    "check_results_json",
    "dataset_info_json",
    "download_results_json",
    "print_json",
    "render_check_results",
    "render_dataset_info",
    "render_download_results",
    "render_throughput",
    "report_download_failures",
    "report_download_warnings",
    "throughput_json",
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


MAX_TABLE_ROWS = 20
"""The most files a download or check table lists; --json lists every file."""

_STATUS_STYLES = {
    "failed": "red",
    "missing": "red",
    "corrupt": "red",
    "incomplete": "yellow",
    "already complete": "dim",
    "intact": "dim",
    "resumed": "yellow",
    "restored": "yellow",
}


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
            "warnings": list(result.warnings),
        }
        for result in results
    ]


def render_download_results(results: Sequence[FileResult]) -> None:
    """Print a table of at most ``MAX_TABLE_ROWS`` files (failures first) and a summary line on stdout."""
    shown = sorted(results, key=lambda result: result.error is None)[:MAX_TABLE_ROWS]
    table = Table()
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("time", justify="right")
    table.add_column("status")
    for result in shown:
        size = "" if result.size_bytes is None else _format_bytes(result.size_bytes)
        style = _STATUS_STYLES.get(result.status, "green")
        # Text cells are neither parsed as markup nor searched for emoji codes: ~30% of the printing time.
        table.add_row(
            Text(result.filename),
            Text(size),
            Text(f"{result.elapsed_s:.1f} s"),
            Text.assemble((result.status, style)),
        )
    console = Console(file=sys.stdout, emoji=False, highlight=False)
    if shown:
        console.print(table)
    total_bytes = sum(result.size_bytes or 0 for result in results)
    summary = (
        f"{len(results):,} files, {_format_bytes(total_bytes)}: {_count_statuses(r.status for r in results)}"
    )
    if len(shown) < len(results):
        summary += f" ({len(results) - len(shown):,} not listed; --json lists every file)"
    console.print(Text(summary), soft_wrap=True)


def report_download_warnings(results: Sequence[FileResult]) -> None:
    """Print one ``warning:`` line on stderr per mirror that failed before another one succeeded."""
    for result in results:
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)


def report_download_failures(results: Sequence[FileResult], verbose: bool) -> None:
    """Print one line per failed file on stderr (after its traceback if ``verbose``)."""
    for result in results:
        if result.error is not None:
            if verbose:
                traceback.print_exception(result.error, file=sys.stderr)
            click.echo(f"error: {result.error}", err=True)


def check_results_json(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """Return the JSON form of ``emloop dataset download --check``: one object per file."""
    return [
        {
            "filename": result.filename,
            "status": result.status,
            "size_bytes": result.size_bytes,
            "problems": list(result.problems),
        }
        for result in results
    ]


def render_check_results(results: Sequence[CheckResult]) -> None:
    """Print the files with problems (at most ``MAX_TABLE_ROWS``) and a summary line on stdout."""
    damaged = [result for result in results if not result.is_intact]
    console = Console(file=sys.stdout, emoji=False, highlight=False)
    if damaged:
        table = Table()
        table.add_column("file")
        table.add_column("status")
        table.add_column("problem")
        for result in damaged[:MAX_TABLE_ROWS]:
            style = _STATUS_STYLES.get(result.status, "red")
            table.add_row(
                Text(result.filename), Text.assemble((result.status, style)), Text("; ".join(result.problems))
            )
        console.print(table)
    summary = f"{len(results):,} files checked: {_count_statuses(result.status for result in results)}"
    if len(damaged) > MAX_TABLE_ROWS:
        summary += f" ({len(damaged) - MAX_TABLE_ROWS:,} not listed; --json lists every file)"
    console.print(Text(summary), soft_wrap=True)


def _count_statuses(statuses: Iterable[str]) -> str:
    counts = Counter(statuses)
    return ", ".join(f"{count:,} {status}" for status, count in counts.most_common()) or "none"


def _format_bytes(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    size = n_bytes / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def throughput_json(report: ThroughputReport) -> dict[str, Any]:
    """Return the JSON form of ``emloop dataset stream``; unknown figures are null."""
    return {
        "stream": report.stream,
        "epochs": report.epochs,
        "epoch_size": report.epoch_size,
        "buffer_size": report.buffer_size,
        "eager": report.eager,
        "batches": report.batches,
        "examples": report.examples,
        "bytes": report.nbytes,
        "seconds": report.seconds,
        "batches_per_second": report.batches_per_second,
        "examples_per_second": report.examples_per_second,
        "megabytes_per_second": report.megabytes_per_second,
        "first_batch_seconds": report.first_batch_seconds,
        "wait_median_seconds": report.wait_median_seconds,
        "wait_p95_seconds": report.wait_p95_seconds,
        "wait_max_seconds": report.wait_max_seconds,
    }


def render_throughput(report: ThroughputReport) -> None:
    """Print the summary of ``emloop dataset stream`` as a table on stdout."""
    epochs = f"{report.epochs:,}" + (
        "" if report.epoch_size is None else f" of {report.epoch_size:,} batches"
    )
    mode = "eager" if report.eager else "gated"
    buffering = f"{report.buffer_size:,} batches ({mode})" if report.buffer_size else "none"
    table = Table(title=escape(f"{report.stream} stream"), title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    megabytes = None if report.nbytes is None else report.nbytes / 1e6
    for measure, value in (
        ("epochs", epochs),
        ("buffer", buffering),
        ("batches", f"{report.batches:,}"),
        ("examples", f"{report.examples:,}"),
        ("data", _figure(megabytes, "MB")),
        ("wall time", _figure(report.seconds, "s", digits=3)),
        ("batches/s", _figure(report.batches_per_second)),
        ("examples/s", _figure(report.examples_per_second)),
        ("MB/s", _figure(report.megabytes_per_second)),
        ("time to first batch", _milliseconds(report.first_batch_seconds)),
        ("wait per batch, median", _milliseconds(report.wait_median_seconds)),
        ("wait per batch, p95", _milliseconds(report.wait_p95_seconds)),
        ("wait per batch, max", _milliseconds(report.wait_max_seconds)),
    ):
        table.add_row(measure, value)
    console = Console(file=sys.stdout)
    console.print(table)
    if report.batches_per_second:
        console.print(
            f"The stream delivers a batch every {1e3 / report.batches_per_second:.3g} ms; "
            "a training step that takes longer is not waiting for data."
        )


def _figure(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f} {unit}".rstrip()


def _milliseconds(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1e3:,.3f} ms"
