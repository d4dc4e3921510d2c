"""Render command results: rich tables and warnings for people, plain tables for logs, JSON for programs.

rich is imported by the functions that draw with it: a download or check whose stdout is no terminal
prints a plain table (cli/stdout) and never loads it.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from emloop_ds.cli.stdout import SPARK_BLOCKS, ascii_safe_stdout, is_terminal, print_plain_table

if TYPE_CHECKING:  # each command imports only its own core modules, and rich only where it draws
    from rich.table import Table

    from emloop_ds.core.download.check import CheckResult
    from emloop_ds.core.download.fetch import FileResult
    from emloop_ds.core.schema import DatasetInfo, SourceInfo, StreamInfo
    from emloop_ds.core.stats import SourceStats
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
    "sparkline",
    "throughput_json",
    "warn_of_findings",
]


def print_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout; NaN or infinity in ``data`` is a bug, not output."""
    click.echo(json.dumps(data, indent=2, allow_nan=False))


def _json_number(value: float | int | bool | None) -> float | int | bool | None:
    # JSON has no NaN or infinity; an unrepresentable figure is reported as absent.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dataset_info_json(info: DatasetInfo) -> dict[str, Any]:
    """Return the JSON form of ``emloop dataset info``; ``stats`` appears where it was computed."""
    return {
        "dataset": info.dataset,
        "streams": [
            {
                "name": stream.name,
                "error": stream.error,
                "sources": [_source_json(source) for source in stream.sources],
            }
            for stream in info.streams
        ],
    }


def _source_json(source: SourceInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": source.name,
        "dtype": source.dtype,
        "shape": None if source.shape is None else list(source.shape),
        "min": _json_number(source.min),
        "max": _json_number(source.max),
        "nan": source.nan,
        "posinf": source.posinf,
        "neginf": source.neginf,
        "ragged": source.ragged,
    }
    if source.stats is not None:
        data["stats"] = _stats_json(source.stats)
    return data


def _stats_json(stats: SourceStats) -> dict[str, Any]:
    histogram = stats.histogram
    data: dict[str, Any] = {
        "mean": _json_number(stats.mean),
        "std": _json_number(stats.std),
        "histogram": None
        if histogram is None
        else {"edges": [_json_number(edge) for edge in histogram.edges], "counts": list(histogram.counts)},
    }
    if stats.values is not None:
        data["values"] = {_value_key(value): count for value, count in stats.values.items()}
    return data


def _value_key(value: int | bool | str) -> str:
    """Spell a counted value as a JSON key: booleans as JSON spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def warn_of_findings(info: DatasetInfo) -> None:
    """Warn on stderr about every broken stream, ragged source and source holding NaN or infinities."""
    for stream in info.streams:
        if stream.error is not None:
            click.echo(f"warning: stream `{stream.name}` is broken: {stream.error}", err=True)
        for source in stream.sources:
            where = f"source `{source.name}` of stream `{stream.name}`"
            if source.ragged:
                click.echo(
                    f"warning: {where} is ragged (its examples differ in length or shape)",
                    err=True,
                )
            if source.non_finite:
                click.echo(f"warning: {where} holds {_non_finite(source)}", err=True)
            if source.stats is not None and source.stats.histogram is not None:
                binned = sum(source.stats.histogram.counts)
                if binned != source.stats.count:
                    click.echo(
                        f"warning: the histogram of {where} holds {binned:,} of the {source.stats.count:,} "
                        "values of the first pass: the stream yielded other data when called again "
                        "(shuffled?); inspect whole epochs with --batches for a histogram of the same data",
                        err=True,
                    )


def _non_finite(source: SourceInfo) -> str:
    counts = (("NaN", source.nan), ("+inf", source.posinf), ("-inf", source.neginf))
    return ", ".join(f"{count:,} {label}" for label, count in counts if count)


def render_dataset_info(info: DatasetInfo) -> None:
    """Print a table per stream on stdout, and one of statistics where they were computed."""
    from rich.markup import escape

    from emloop_ds.cli.console import stdout_console

    console = stdout_console()
    if not info.streams:
        console.print(escape(f"{info.dataset} has no streams (no public <name>_stream methods)"))
    for stream in info.streams:
        if stream.sources:  # of a broken stream: what the batches before the failure showed
            console.print(_sources_table(stream))
        if any(source.stats is not None for source in stream.sources):
            console.print(_stats_table(stream))
        if stream.error is not None:
            console.print(
                f"[bold]{escape(stream.name)}[/bold] stream: [red]broken[/red]: {escape(stream.error)}"
            )


def _sources_table(stream: StreamInfo) -> Table:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(title=escape(f"{stream.name} stream"), title_justify="left")
    for column in ("source", "dtype", "shape", "range", "NaN/inf", "ragged"):
        table.add_column(column)
    for source in stream.sources:
        table.add_row(
            Text(source.name),
            Text(source.dtype),
            Text("unknown" if source.shape is None else str(list(source.shape))),
            Text(_ABSENT if source.min is None else f"{source.min} – {source.max}"),
            Text(_non_finite(source), style="red") if source.non_finite else Text("none"),
            Text("yes", style="yellow") if source.ragged else Text("no"),
        )
    return table


def _stats_table(stream: StreamInfo) -> Table:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(title=escape(f"{stream.name} stream: statistics"), title_justify="left")
    for column in ("source", "mean", "std", "histogram", "values"):
        table.add_column(column, no_wrap=column == "histogram")  # a sparkline is one line
    for source in stream.sources:
        stats = source.stats
        if stats is None:
            continue
        histogram = stats.histogram
        table.add_row(
            Text(source.name),
            Text(_table_number(stats.mean)),
            Text(_table_number(stats.std)),
            Text(
                _ABSENT
                if histogram is None
                else f"{histogram.edges[0]:.4g} {sparkline(histogram.counts)} {histogram.edges[-1]:.4g}"
            ),
            Text(
                _ABSENT
                if stats.values is None
                else ", ".join(f"{_value_key(value)}: {count:,}" for value, count in stats.values.items())
            ),
        )
    return table


_ABSENT = "–"
"""A table cell whose figure does not apply or is unknown: ``null`` (or no key) in the JSON form."""


def _table_number(value: float | None) -> str:
    json_value = _json_number(value)  # the table shows what the JSON says
    return _ABSENT if json_value is None else f"{json_value:.6g}"


def sparkline(counts: Sequence[int]) -> str:
    """Draw counts as one line of blocks: an empty bin as a space, the largest as a full block."""
    largest = max(counts, default=0)
    if largest == 0:
        return " " * len(counts)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[math.ceil(count * top / largest)] for count in counts)


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
    """Print a table of at most ``MAX_TABLE_ROWS`` files (failures first) and a summary line on stdout.

    At a terminal the table is rich's; elsewhere (a pipe, a file, a CI log) it is plain text.
    """
    shown = sorted(results, key=lambda result: result.error is None)[:MAX_TABLE_ROWS]
    rows = [
        (
            result.filename,
            "" if result.size_bytes is None else _format_bytes(result.size_bytes),
            f"{result.elapsed_s:.1f} s",
            result.status,
        )
        for result in shown
    ]
    total_bytes = sum(result.size_bytes or 0 for result in results)
    summary = (
        f"{_files(len(results))}, {_format_bytes(total_bytes)}: {_count_statuses(r.status for r in results)}"
    )
    if len(shown) < len(results):
        summary += f" ({len(results) - len(shown):,} not listed; --json lists every file)"
    _print_table(
        ("file", "size", "time", "status"),
        rows,
        summary,
        right_aligned={1, 2},
        status_column=3,
        status_style="green",
    )


def _print_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    summary: str,
    *,
    right_aligned: Collection[int] = (),
    status_column: int,
    status_style: str,
) -> None:
    """Print the rows of a download or check table (none: no table) and a summary line on stdout.

    At a terminal the table is rich's, its status column coloured (``status_style`` for a status
    ``_STATUS_STYLES`` does not name); elsewhere it is plain text, which needs no rich.
    """
    if not is_terminal():
        if rows:
            print_plain_table(header, rows, right_aligned)
        stdout = ascii_safe_stdout()
        stdout.write(summary + "\n")
        stdout.flush()
        return
    from rich.table import Table
    from rich.text import Text

    from emloop_ds.cli.console import stdout_console

    console = stdout_console(emoji=False, highlight=False)
    if rows:
        table = Table()
        for column, name in enumerate(header):
            table.add_column(name, justify="right" if column in right_aligned else "left")
        for row in rows:
            # Text cells are neither parsed as markup nor searched for emoji codes: ~30% of the printing time.
            table.add_row(
                *(
                    Text.assemble((cell, _STATUS_STYLES.get(cell, status_style)))
                    if column == status_column
                    else Text(cell)
                    for column, cell in enumerate(row)
                )
            )
        console.print(table)
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
    """Print the files with problems (at most ``MAX_TABLE_ROWS``) and a summary line on stdout.

    At a terminal the table is rich's; elsewhere (a pipe, a file, a CI log) it is plain text.
    """
    damaged = [result for result in results if not result.is_intact]
    rows = [
        (result.filename, result.status, "; ".join(result.problems)) for result in damaged[:MAX_TABLE_ROWS]
    ]
    summary = f"{_files(len(results))} checked: {_count_statuses(result.status for result in results)}"
    if len(damaged) > MAX_TABLE_ROWS:
        summary += f" ({len(damaged) - MAX_TABLE_ROWS:,} not listed; --json lists every file)"
    _print_table(("file", "status", "problem"), rows, summary, status_column=1, status_style="red")


def _files(count: int) -> str:
    return f"{count:,} file" if count == 1 else f"{count:,} files"


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
    engine: dict[str, Any] = {"engine": report.engine}
    if report.engine == "dask":
        engine["scheduler"] = report.scheduler
    return {
        "stream": report.stream,
        "epochs": report.epochs,
        "epoch_size": report.epoch_size,
        "buffer_size": report.buffer_size,
        "eager": report.eager,
        "workers": report.workers,
        "ordered": report.ordered,
        **engine,
        "cache": report.cache,
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
        "interrupted": report.interrupted,
        "resumed_at": report.resumed_at,
    }


def render_throughput(report: ThroughputReport) -> None:
    """Print the summary of ``emloop dataset stream`` as a table on stdout."""
    from rich.markup import escape
    from rich.table import Table

    from emloop_ds.cli.console import stdout_console

    epochs = f"{report.epochs:,}" + (
        "" if report.epoch_size is None else f" of {report.epoch_size:,} batches"
    )
    mode = "eager" if report.eager else "gated"
    buffering = f"{report.buffer_size:,} batches ({mode})" if report.buffer_size else "none"
    if report.workers:
        buffering = f"{report.buffer_size:,} batches in flight per worker"
    workers = f"{report.workers:,} ({'ordered' if report.ordered else 'as ready'})" if report.workers else "0"
    interruption = f" (interrupted by {report.interrupted_by or 'Ctrl-C'})" if report.interrupted else ""
    title = f"{report.stream} stream{interruption}"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    megabytes = None if report.nbytes is None else report.nbytes / 1e6
    for measure, value in (
        ("epochs", epochs),
        ("buffer", buffering),
        ("workers", workers),
        ("engine", report.engine),
        *((("scheduler", escape(report.scheduler or "")),) if report.engine == "dask" else ()),
        ("cache", {"write": "written", "read": "read"}.get(report.cache or "", "none")),
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
        *((("resumed at", _resumed_at(report.resumed_at)),) if report.resumed_at is not None else ()),
    ):
        table.add_row(measure, value)
    console = stdout_console()
    console.print(table)
    if report.batches_per_second:
        console.print(
            f"The stream delivers a batch every {1e3 / report.batches_per_second:.3g} ms; "
            "a training step that takes longer is not waiting for data."
        )


def _resumed_at(position: dict[str, int]) -> str:
    return f"epoch {position['epoch']:,}, batch {position['batch']:,}"


def _figure(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f} {unit}".rstrip()


def _milliseconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    # Waits on a fast stream are fractions of a microsecond: keep three significant digits for them.
    return f"{seconds * 1e3:.3g} ms" if 0 < seconds < 1e-3 else f"{seconds * 1e3:,.3f} ms"
