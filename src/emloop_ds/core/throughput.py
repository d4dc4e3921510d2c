"""Measure how fast a dataset stream delivers batches: totals, rates, time to first batch and waits.

Memory stays flat however long a stream is read: totals are counters and the waits go into a
``WaitSketch`` of bounded size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from emloop_ds.core.errors import ConfigError, EmloopDsError, StreamError, TerminatedError, describe_exception
from emloop_ds.core.schema import STREAM_SUFFIX, require_equal_lengths, stream_names
from emloop_ds.core.stream.wrapper import StreamWrapper

if TYPE_CHECKING:
    from emloop_ds.core.stream.state_file import StateFile

__all__ = ["ThroughputReport", "WaitSketch", "find_stream", "measure_stream"]


@dataclass(frozen=True)
class ThroughputReport:
    """What reading a stream took; ``nbytes`` is ``None`` when no source held arrays.

    The waits are how long each read of a batch took the reader; median and p95 are within 1% of the
    exact values (``WaitSketch``). ``interrupted`` says that Ctrl-C or SIGTERM ended the read early.
    """

    stream: str
    epochs: int
    epoch_size: int | None
    buffer_size: int
    eager: bool
    batches: int
    examples: int
    nbytes: int | None
    seconds: float
    first_batch_seconds: float | None
    wait_median_seconds: float | None
    wait_p95_seconds: float | None
    wait_max_seconds: float | None
    interrupted: bool = False
    workers: int = 0
    ordered: bool = True
    engine: str = "in-process"
    """Where the stream ran: ``in-process``, ``processes`` (worker processes) or ``dask``."""
    scheduler: str | None = None
    """With Dask, the scheduler's address, or ``local`` for a LocalCluster the read started."""
    cache: str | None = None
    """``"write"`` if the read wrote the stream's cache, ``"read"`` if it read one, None without a cache."""
    interrupted_by: str | None = None
    """What ended the read early: ``Ctrl-C`` or ``SIGTERM``; None if nothing did."""
    resumed_at: dict[str, int] | None = None
    """Where a read resumed from a state file: ``{"epoch": E, "batch": B}``; None for a fresh start."""

    @property
    def batches_per_second(self) -> float | None:
        """Batches read per second of wall time."""
        return self.batches / self.seconds if self.seconds > 0 else None

    @property
    def examples_per_second(self) -> float | None:
        """Examples (the first source's length, summed) read per second of wall time."""
        return self.examples / self.seconds if self.seconds > 0 else None

    @property
    def megabytes_per_second(self) -> float | None:
        """Megabytes (10**6 bytes) of array sources read per second of wall time."""
        if self.nbytes is None or self.seconds <= 0:
            return None
        return self.nbytes / 1e6 / self.seconds


class WaitSketch:
    """Summarise durations in bounded memory: their count, maximum and quantiles within 1%.

    Each duration is counted in a bucket of durations within a factor ``gamma`` of each other (a
    DDSketch): a quantile is the middle of its bucket, at most ``relative_accuracy`` from the exact
    value. Buckets exist only for durations seen, and 1 ns to a day spans about 1,600 of them. ``add``
    only appends to a list of at most ``PENDING_LIMIT`` durations, which numpy sorts into the buckets
    when full: half the cost per batch of bucketing each duration in Python.
    """

    MIN_SECONDS = 1e-9
    """Shorter durations, zero included, share one bucket reported as 0."""

    PENDING_LIMIT = 4096

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._per_log_gamma = 1 / math.log(self._gamma)
        self._pending: list[float] = []
        self._buckets: dict[int, int] = {}
        self._short = 0
        self._counted = 0
        self._max = -math.inf

    @property
    def count(self) -> int:
        """Return how many durations were added."""
        return self._counted + len(self._pending)

    @property
    def max_seconds(self) -> float | None:
        """Return the longest duration, or None before any add."""
        self._flush()
        return None if self._counted == 0 else self._max

    @property
    def stored_numbers(self) -> int:
        """Return how many numbers the sketch holds: bounded, however many durations were added."""
        return len(self._pending) + 2 * len(self._buckets) + 4

    def add(self, seconds: float) -> None:
        """Count one duration."""
        pending = self._pending
        pending.append(seconds)
        if len(pending) >= self.PENDING_LIMIT:
            self._flush()

    def quantile(self, fraction: float) -> float | None:
        """Return the nearest-rank quantile (``fraction`` 0.5 is the median), or None before any add."""
        self._flush()
        if self._counted == 0:
            return None
        rank = max(math.ceil(fraction * self._counted), 1)
        seen = self._short
        if seen >= rank:
            return 0.0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            if seen >= rank:
                return min(2 * self._gamma**key / (self._gamma + 1), self._max)
        return self._max

    def _flush(self) -> None:
        """Count the pending durations into the buckets."""
        if not self._pending:
            return
        import numpy as np

        waits = np.array(self._pending, dtype=np.float64)
        self._pending.clear()
        self._counted += waits.size
        self._max = max(self._max, float(waits.max()))
        timed = waits[waits >= self.MIN_SECONDS]
        self._short += waits.size - timed.size
        keys, counts = np.unique(np.ceil(np.log(timed) * self._per_log_gamma), return_counts=True)
        for key, count in zip(keys.astype(np.int64).tolist(), counts.tolist(), strict=True):
            self._buckets[key] = self._buckets.get(key, 0) + count


@dataclass
class _Tally:
    """Running totals of the batches read so far; ``add`` is where each batch is checked and counted."""

    stream: str
    batches: int = 0
    examples: int = 0
    nbytes: int | None = None
    first_batch_seconds: float | None = None
    waits: WaitSketch = field(default_factory=WaitSketch)

    def add(self, batch: Any, elapsed_s: float, wait_s: float) -> None:
        """Check ``batch`` and count it, read ``elapsed_s`` after the start after waiting ``wait_s``."""
        if not isinstance(batch, Mapping):
            raise StreamError(
                f"stream `{self.stream}` yielded a {type(batch).__name__} as batch {self.batches + 1}, "
                "not a mapping of source names to examples; make the stream yield dicts"
            )
        require_equal_lengths(batch, self.stream, self.batches + 1)
        if self.first_batch_seconds is None:
            self.first_batch_seconds = elapsed_s
        self.waits.add(wait_s)
        self.batches += 1
        first_source = next(iter(batch.values()), None)
        self.examples += len(first_source) if isinstance(first_source, Sized) else 0
        for values in batch.values():
            nbytes = getattr(values, "nbytes", None)
            if isinstance(nbytes, int):
                self.nbytes = (self.nbytes or 0) + nbytes


def find_stream(dataset: Any, stream: str) -> Callable[[], Any]:
    """Return the dataset's ``<stream>_stream`` method.

    Raises:
        ConfigError: naming the available streams if there is no such stream.
    """
    available = stream_names(dataset)
    if stream not in available:
        listed = ", ".join(sorted(available)) or "none (no public <name>_stream methods)"
        raise ConfigError(f"dataset {type(dataset).__name__} has no stream `{stream}`; available: {listed}")
    return getattr(dataset, stream + STREAM_SUFFIX)  # type: ignore[no-any-return]


@dataclass
class _EndlessHint:
    """Call ``notify`` once when a batch arrives at or after ``due`` on the clock, unless cancelled first."""

    due: float
    notify: Callable[[], object]
    is_pending: bool = True

    def check(self, now: float) -> None:
        if self.is_pending and now >= self.due:
            self.is_pending = False
            self.notify()


def measure_stream(
    stream_fn: Callable[[], Any],
    stream: str = "train",
    epochs: int = 1,
    epoch_size: int | None = None,
    buffer_size: int = 0,
    eager: bool = False,
    workers: int = 0,
    ordered: bool = True,
    engine: Literal["processes", "dask"] = "processes",
    scheduler: str | None = None,
    scheduler_timeout_s: float = 10.0,
    cache: bool | Path = False,
    shuffle: bool = False,
    seed: int = 0,
    on_batch: Callable[[], object] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_endless_hint: Callable[[], object] | None = None,
    endless_hint_after_s: float = 10.0,
    rank: int = 0,
    world_size: int = 1,
    state_file: StateFile | None = None,
) -> ThroughputReport:
    """Read ``epochs`` epochs of a stream through a ``StreamWrapper`` and report the throughput.

    Ctrl-C ends the read early: the report covers what was read and says ``interrupted``.

    Args:
        stream_fn: returns the stream, e.g. a dataset's ``train_stream`` (see ``find_stream``).
        stream: the stream's name.
        epoch_size: batches per epoch; ``None`` reads one pass of the stream per epoch.
        buffer_size: batches prepared ahead; with workers, batches in flight per worker (below 1: 2).
        workers: worker processes running shards of the stream; 0 reads in this process.
        ordered: with workers, merge the shards in turn rather than as ready.
        engine: with workers, ``processes`` or ``dask``; ``scheduler`` and ``scheduler_timeout_s`` are
            the Dask engine's (``StreamWrapper``).
        cache: read through the stream's cache (``True``: under the cache root; a folder: there);
            ``shuffle`` and ``seed`` permute the passes read from it (``StreamWrapper``).
        on_batch: called after each batch, e.g. to advance a progress bar.
        clock: the wall clock in seconds, replaceable in tests.
        on_endless_hint: called once if, without ``epoch_size``, a batch of the first epoch arrives
            ``endless_hint_after_s`` or more after the start: the stream may never end.
        rank: this reader's rank of ``world_size`` in a data-parallel job (``StreamWrapper``).
        state_file: resume from it if it was read (``StateFile.read``) and save the state to it, every
            N batches if it says so and whenever the read stops (NOTE [state file]). ``epochs`` then
            counts the epochs of the whole run, those read before the resume included.

    Raises:
        StreamError: if the stream fails; the dataset's exception is its cause.
        ConfigError: if the state file's state is of another stream, config or parameters.
    """
    options: dict[str, Any] = {}
    if engine == "dask":
        options = {"scheduler": scheduler, "scheduler_timeout_s": scheduler_timeout_s}
    if cache is not False:
        options.update(cache=cache, shuffle=shuffle, seed=seed)
    wrapper = StreamWrapper(
        stream_fn,
        stream,
        rank=rank,
        world_size=world_size,
        buffer_size=buffer_size,
        epoch_size=epoch_size or -1,
        eager=eager,
        workers=workers,
        ordered=ordered,
        engine=engine,
        **options,
    )
    if workers > 0 and buffer_size < 1:
        from emloop_ds.core.stream.worker_source import DEFAULT_BUFFER_SIZE

        buffer_size = DEFAULT_BUFFER_SIZE
    resumed_at = None
    if state_file is not None:
        try:
            state_file.resume(wrapper)
        except BaseException:
            wrapper.close()
            raise
        resumed_at = state_file.resumed_at
    tally = _Tally(stream=stream)
    start = clock()
    hint = None
    if epoch_size is None and on_endless_hint is not None:
        hint = _EndlessHint(start + endless_hint_after_s, on_endless_hint)
    interrupted_by = None
    try:
        _read_epochs(wrapper, epochs, tally, clock, start, on_batch, hint, state_file)
    except KeyboardInterrupt as exc:
        interrupted_by = "SIGTERM" if isinstance(exc, TerminatedError) else "Ctrl-C"
    finally:
        try:
            if state_file is not None:
                state_file.save(wrapper)  # NOTE [state file]: whatever ended the read
        finally:
            wrapper.close()  # stops the worker processes or the Dask cluster, if any
    seconds = clock() - start
    if engine == "dask":
        scheduler = getattr(wrapper.shard_engine, "scheduler", None) or scheduler or "local"
    return ThroughputReport(
        stream=stream,
        epochs=epochs,
        epoch_size=epoch_size,
        buffer_size=buffer_size,
        eager=eager,
        batches=tally.batches,
        examples=tally.examples,
        nbytes=tally.nbytes,
        seconds=seconds,
        first_batch_seconds=tally.first_batch_seconds,
        wait_median_seconds=tally.waits.quantile(0.5),
        wait_p95_seconds=tally.waits.quantile(0.95),
        wait_max_seconds=tally.waits.max_seconds,
        interrupted=interrupted_by is not None,
        workers=workers,
        ordered=ordered,
        engine=engine if workers > 0 else "in-process",
        scheduler=scheduler if workers > 0 and engine == "dask" else None,
        cache=wrapper.cache_mode,
        interrupted_by=interrupted_by,
        resumed_at=resumed_at,
    )


def _read_epochs(
    wrapper: StreamWrapper,
    epochs: int,
    tally: _Tally,
    clock: Callable[[], float],
    start: float,
    on_batch: Callable[[], object] | None,
    hint: _EndlessHint | None,
    state_file: StateFile | None,
) -> None:
    """Read the epochs into ``tally``, timing each read; wrap the dataset's exceptions in ``StreamError``.

    After a resume, epochs are counted from the resumed one, so that ``epochs`` counts the whole run.
    """
    resumed_at = state_file.resumed_at if state_file is not None else None
    epoch = resumed_at["epoch"] if resumed_at is not None else 0
    try:
        with wrapper:
            while epoch < epochs:
                while True:
                    before = clock()
                    try:
                        batch = next(wrapper)
                    except StopIteration:
                        break
                    after = clock()
                    if resumed_at is not None:  # the first batch since the resume
                        resumed_at, epoch = None, _epoch_of_first_batch(wrapper, epoch)
                        if epoch >= epochs and state_file is not None:
                            state_file.keep()  # the run had read all its epochs: it stays as saved
                            return
                    tally.add(batch, after - start, after - before)
                    if state_file is not None:
                        state_file.count_batch(wrapper)  # after the count: NOTE [state file]
                    if on_batch is not None:
                        on_batch()
                    if hint is not None:
                        hint.check(after)
                hint = None  # the first epoch has ended
                epoch += 1
    except EmloopDsError:
        raise
    except Exception as exc:
        raise StreamError(
            f"stream `{wrapper.name}` failed after {tally.batches} batches: {describe_exception(exc)} "
            "(--verbose shows the traceback)"
        ) from exc


def _epoch_of_first_batch(wrapper: StreamWrapper, resumed_epoch: int) -> int:
    """Return the epoch of the first batch read since a resume at ``resumed_epoch``.

    Without ``epoch_size`` it is the next one if the state was taken after the last batch of a pass,
    which only the resumed stream finds out (NOTE [resume position]); epochs of a fixed size leave no doubt.
    """
    state = wrapper.state_dict()
    return resumed_epoch if state["epoch_size"] > 0 else max(int(state["epoch"]), resumed_epoch)
