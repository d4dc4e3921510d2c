"""Define ``emloop dataset stream``: read a stream and report how fast it delivers batches."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import click

from emloop_ds.cli.options import config_argument, json_option, overrides_argument, verbose_option
from emloop_ds.cli.stream_state import open_state_file, progress_done, sigterm_as_interrupt, state_options

__all__ = ["ENDLESS_HINT_AFTER_S", "stream"]

ENDLESS_HINT_AFTER_S = 10.0
DEFAULT_SCHEDULER_TIMEOUT_S = 10.0
"""Seconds after which a first epoch without --epoch-size that has not ended gets a hint."""


@click.command("stream")
@config_argument
@overrides_argument
@click.option("--stream", "stream_name", default="train", show_default=True, help="The stream to read.")
@click.option(
    "--epoch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Batches per epoch, continuing over restarts of the stream.  [default: one pass of the stream]",
)
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True, help="Epochs to read.")
@click.option(
    "--buffer",
    "buffer_size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Batches a background thread prepares ahead; 0 reads in the foreground. "
    "With --workers: batches in flight per worker, 0 meaning 2.",
)
@click.option(
    "--eager",
    is_flag=True,
    help="Let the buffer fill whenever it has room, not only while the reader waits (needs --buffer; "
    "no effect with --workers).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker processes that each run a shard of the stream (it must take a `shard` parameter); "
    "0 reads in this process.",
)
@click.option(
    "--unordered",
    is_flag=True,
    help="With --workers, deliver batches as they are ready instead of one from each worker in turn.",
)
@click.option(
    "--engine",
    type=click.Choice(["processes", "dask"]),
    default="processes",
    show_default=True,
    help="Where the --workers shards run: worker processes on this machine, or a Dask cluster "
    "(pip install 'emloop-ds[dask]').",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="With --engine dask, the scheduler to use, e.g. tcp://host:8786.  "
    "[default: Dask's configured scheduler, else a local cluster of --workers processes]",
)
@click.option(
    "--timeout",
    "scheduler_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --engine dask, seconds to wait for the scheduler and its workers.  [default: 10]",
)
@state_options
@json_option
@verbose_option
@sigterm_as_interrupt
def stream(
    config: Path,
    overrides: tuple[str, ...],
    stream_name: str,
    epoch_size: int | None,
    epochs: int,
    buffer_size: int,
    eager: bool,
    workers: int,
    unordered: bool,
    engine: Literal["processes", "dask"],
    scheduler: str | None,
    scheduler_timeout_s: float | None,
    state_path: Path | None,
    state_every: int | None,
    rank: int,
    world_size: int,
    as_json: bool,
) -> None:
    """Read a stream with a progress bar, then show batches, examples, rates and waits per batch.

    Ctrl-C stops the read, shows the summary of what was read and exits with 130; SIGTERM does the same
    and exits with 143. With --state FILE the read resumes where the last one stopped.

    Example: emloop dataset stream examples/iris/config.yaml --epochs 10 --workers 2 [--engine dask]
    """
    from tqdm import tqdm

    from emloop_ds.cli.render import print_json, render_throughput, throughput_json
    from emloop_ds.core.config import load_config
    from emloop_ds.core.errors import TerminatedError
    from emloop_ds.core.factory import create_dataset
    from emloop_ds.core.throughput import find_stream, measure_stream

    if eager and buffer_size == 0 and workers == 0:
        raise click.UsageError("--eager needs a buffer: add --buffer N with N of 1 or more")
    if unordered and workers == 0:
        raise click.UsageError("--unordered needs worker processes: add --workers N with N of 1 or more")
    _check_engine_options(engine, workers, scheduler, scheduler_timeout_s)
    state_file = open_state_file(state_path, state_every, rank, world_size)
    stream_fn = find_stream(create_dataset(load_config(config, overrides)), stream_name)
    hint = (
        f"hint: the first epoch of stream `{stream_name}` has not ended after {ENDLESS_HINT_AFTER_S:g} s; "
        "the stream may be endless: --epoch-size N reads epochs of N batches"
    )
    total = epochs * epoch_size if epoch_size is not None else None
    done = progress_done(state_file, epoch_size)
    with tqdm(
        desc=stream_name, total=total, initial=done, unit=" batches", file=sys.stderr, dynamic_ncols=True
    ) as bar:
        report = measure_stream(
            stream_fn,
            stream_name,
            epochs,
            epoch_size,
            buffer_size,
            eager,
            workers=workers,
            ordered=not unordered,
            engine=engine,
            scheduler=scheduler,
            scheduler_timeout_s=scheduler_timeout_s or DEFAULT_SCHEDULER_TIMEOUT_S,
            on_batch=bar.update,
            on_endless_hint=lambda: tqdm.write(hint, file=sys.stderr),
            endless_hint_after_s=ENDLESS_HINT_AFTER_S,
            rank=rank,
            world_size=world_size,
            state_file=state_file,
        )
    if as_json:
        print_json(throughput_json(report))
    else:
        render_throughput(report)
    if report.interrupted:
        # The summary is out; the root reports the interruption and exits with 130 (143 for SIGTERM).
        raise TerminatedError if report.interrupted_by == "SIGTERM" else KeyboardInterrupt


def _check_engine_options(
    engine: str, workers: int, scheduler: str | None, scheduler_timeout_s: float | None
) -> None:
    """Refuse --engine dask without --workers, and the Dask options without --engine dask."""
    if engine == "dask" and workers == 0:
        raise click.UsageError("--engine dask runs shards of the stream: add --workers N with N of 1 or more")
    if engine != "dask" and (scheduler is not None or scheduler_timeout_s is not None):
        raise click.UsageError("--scheduler and --timeout are for the Dask engine: add --engine dask")
