"""Measure how fast a dataset stream delivers batches: totals, rates, time to first batch and waits."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from typing import Any

from emloop_ds.core.errors import ConfigError, EmloopDsError, StreamError, describe_exception
from emloop_ds.core.schema import STREAM_SUFFIX, require_equal_lengths, stream_names
from emloop_ds.core.stream.wrapper import StreamWrapper

__all__ = ["ThroughputReport", "find_stream", "measure_stream"]


@dataclass(frozen=True)
class ThroughputReport:
    """What reading a stream took; ``nbytes`` is ``None`` when no source held arrays.

    The waits are the consumer's read times per batch from the wrapper's profile.
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
    workers: int = 0
    ordered: bool = True

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


@dataclass
class _Tally:
    """Running totals of the batches read so far."""

    stream: str
    batches: int = 0
    examples: int = 0
    nbytes: int | None = None
    first_batch_seconds: float | None = None

    def add(self, batch: Any, elapsed_s: float) -> None:
        if not isinstance(batch, Mapping):
            raise StreamError(
                f"stream `{self.stream}` yielded a {type(batch).__name__} as batch {self.batches + 1}, "
                "not a mapping of source names to examples; make the stream yield dicts"
            )
        require_equal_lengths(batch, self.stream, self.batches + 1)
        if self.first_batch_seconds is None:
            self.first_batch_seconds = elapsed_s
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


def measure_stream(
    stream_fn: Callable[[], Any],
    stream: str = "train",
    epochs: int = 1,
    epoch_size: int | None = None,
    buffer_size: int = 0,
    eager: bool = False,
    workers: int = 0,
    ordered: bool = True,
    on_batch: Callable[[], object] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ThroughputReport:
    """Read ``epochs`` epochs of a stream through a ``StreamWrapper`` and report the throughput.

    Args:
        stream_fn: returns the stream, e.g. a dataset's ``train_stream`` (see ``find_stream``).
        stream: the stream's name.
        epoch_size: batches per epoch; ``None`` reads one pass of the stream per epoch.
        buffer_size: batches prepared ahead; with workers, batches in flight per worker (below 1: 2).
        workers: worker processes running shards of the stream; 0 reads in this process.
        ordered: with workers, merge the shards in turn rather than as ready.
        on_batch: called after each batch, e.g. to advance a progress bar.
        clock: the wall clock in seconds, replaceable in tests.

    Raises:
        StreamError: if the stream fails; the dataset's exception is its cause.
    """
    profile: dict[str, list[float]] = {}
    wrapper = StreamWrapper(
        stream_fn,
        stream,
        buffer_size=buffer_size,
        epoch_size=epoch_size or -1,
        profile=profile,
        eager=eager,
        workers=workers,
        ordered=ordered,
    )
    if workers > 0 and buffer_size < 1:
        from emloop_ds.core.stream.workers import DEFAULT_BUFFER_SIZE

        buffer_size = DEFAULT_BUFFER_SIZE
    start = clock()
    try:
        tally = _read_epochs(wrapper, epochs, lambda: clock() - start, on_batch)
    finally:
        wrapper.close()
    seconds = clock() - start
    waits = sorted(profile.get(f"read_batch_{stream}", []))
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
        wait_median_seconds=statistics.median(waits) if waits else None,
        wait_p95_seconds=waits[math.ceil(0.95 * len(waits)) - 1] if waits else None,
        wait_max_seconds=waits[-1] if waits else None,
        workers=workers,
        ordered=ordered,
    )


def _read_epochs(
    wrapper: StreamWrapper, epochs: int, elapsed_s: Callable[[], float], on_batch: Callable[[], object] | None
) -> _Tally:
    """Read ``epochs`` epochs, tallying each batch; wrap the dataset's exceptions in ``StreamError``."""
    tally = _Tally(stream=str(wrapper.name))
    try:
        with wrapper:
            for _ in range(epochs):
                for batch in wrapper:
                    tally.add(batch, elapsed_s())
                    if on_batch is not None:
                        on_batch()
    except EmloopDsError:
        raise
    except Exception as exc:
        raise StreamError(
            f"stream `{wrapper.name}` failed after {tally.batches} batches: {describe_exception(exc)} "
            "(--verbose shows the traceback)"
        ) from exc
    return tally
