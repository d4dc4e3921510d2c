"""Define ``emloop dataset stream``: read a stream and report how fast it delivers batches."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from emloop_ds.cli.options import (
    cache_dir_option,
    check_engine_options,
    config_argument,
    engine_options,
    json_option,
    overrides_argument,
    verbose_option,
)
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
@engine_options
@click.option(
    "--unordered",
    is_flag=True,
    help="With --workers, deliver batches as they are ready instead of one from each worker in turn.",
)
@click.option(
    "--cache",
    "use_cache",
    is_flag=True,
    help="Read through the stream's cache: the first pass writes it, later passes and runs read it.",
)
@click.option(
    "--shuffle",
    is_flag=True,
    help="With --cache, read each pass from the cache as a new permutation of all examples.",
)
@click.option("--seed", type=int, default=None, help="With --shuffle, the permutations' seed.  [default: 0]")
@cache_dir_option
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
    engine: Literal["processes", "dask"],
    scheduler: str | None,
    scheduler_timeout_s: float | None,
    unordered: bool,
    use_cache: bool,
    shuffle: bool,
    seed: int | None,
    cache_dir: Path | None,
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
    from emloop_ds.cli.render import print_json, render_throughput, throughput_json
    from emloop_ds.cli.stream_progress import open_batch_progress
    from emloop_ds.core.config import load_config
    from emloop_ds.core.errors import TerminatedError
    from emloop_ds.core.factory import create_dataset
    from emloop_ds.core.throughput import find_stream, measure_stream

    if eager and buffer_size == 0 and workers == 0:
        raise click.UsageError("--eager needs a buffer: add --buffer N with N of 1 or more")
    if unordered and workers == 0:
        raise click.UsageError("--unordered needs worker processes: add --workers N with N of 1 or more")
    check_engine_options(engine, workers, scheduler, scheduler_timeout_s)
    if (shuffle or seed is not None or cache_dir is not None) and not use_cache:
        raise click.UsageError("--shuffle, --seed and --cache-dir are for the stream cache: add --cache")
    if seed is not None and not shuffle:
        raise click.UsageError("--seed is the seed of --shuffle: add --shuffle")
    cache: bool | Path = False
    if use_cache:
        from emloop_ds.cli.cache import use_cache_dir

        cache = use_cache_dir(cache_dir) or True
    state_file = open_state_file(state_path, state_every, rank, world_size)
    stream_fn = find_stream(create_dataset(load_config(config, overrides)), stream_name)
    hint = (
        f"hint: the first epoch of stream `{stream_name}` has not ended after {ENDLESS_HINT_AFTER_S:g} s; "
        "the stream may be endless: --epoch-size N reads epochs of N batches"
    )
    total = epochs * epoch_size if epoch_size is not None else None
    done = progress_done(state_file, epoch_size)
    with open_batch_progress(stream_name, total, initial=done) as progress:
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
            cache=cache,
            shuffle=shuffle,
            seed=seed or 0,
            on_batch=progress.advance,
            on_endless_hint=lambda: progress.note(hint),
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
