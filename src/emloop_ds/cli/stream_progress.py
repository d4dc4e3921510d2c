"""Show how far a read of batches has come: a tqdm bar at a terminal, a line every 5 s in logs.

Where standard error is not a terminal (a CI log, a file, a pipe), a bar would be thousands of
carriage-return updates on one line; it gets a progress line at most every ``LINE_INTERVAL_S`` seconds
instead, as ``emloop dataset download`` does (``core.download.progress.LineProgress``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO

from emloop_ds.core.download.progress import format_bytes, format_duration

__all__ = ["LINE_INTERVAL_S", "BatchLines", "BatchProgress", "open_batch_progress"]

LINE_INTERVAL_S = 5.0


class BatchProgress(Protocol):
    """Receive the progress of a read; called from the thread that reads the stream."""

    def advance(self, nbytes: int = 0) -> None:
        """Count one more batch read, of ``nbytes`` bytes if they are counted."""

    def note(self, message: str) -> None:
        """Tell the user something (such as a hint) without garbling the progress shown."""


@contextlib.contextmanager
def open_batch_progress(
    stream_name: str, total: int | None, clock: Callable[[], float] = time.monotonic, initial: int = 0
) -> Iterator[BatchProgress]:
    """Report the read of ``total`` batches (``None`` if unknown) of ``stream_name`` on standard error.

    ``initial`` batches count as read already (by the run a resumed one continues).
    """
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(
            desc=stream_name,
            total=total,
            initial=initial,
            unit=" batches",
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar:
            yield _TqdmBatches(bar)
    else:
        yield BatchLines(stream_name, total, sys.stderr, clock=clock, initial=initial)


class _TqdmBatches:
    """Advance a tqdm bar; notes are printed above it."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._bytes = 0

    def advance(self, nbytes: int = 0) -> None:
        if nbytes:
            self._bytes += nbytes
            self._bar.set_postfix_str(format_bytes(self._bytes), refresh=False)
        self._bar.update()

    def note(self, message: str) -> None:
        self._bar.write(message, file=sys.stderr)


class BatchLines:
    """Print a progress line at most every ``interval_s`` seconds, for logs where a bar would be noise.

    A line reads ``progress: train 1200 of 5000 batches, 240.0 batches/s, ETA 16s`` (without ``of`` and
    the ETA if the total is unknown). A read shorter than the interval prints none: the summary follows.
    """

    def __init__(
        self,
        stream_name: str,
        total: int | None,
        file: TextIO,
        interval_s: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        initial: int = 0,
    ) -> None:
        """Write to ``file``, reading the time from ``clock``; ``initial`` batches count as read already."""
        self._stream_name = stream_name
        self._total = total
        self._file = file
        self._interval_s = interval_s
        self._clock = clock
        self._batches = self._initial = initial
        self._bytes = 0
        self._started_s = self._last_s = clock()

    def advance(self, nbytes: int = 0) -> None:
        """Count a batch (of ``nbytes`` bytes); print a line if the last one is ``interval_s`` old."""
        self._batches += 1
        self._bytes += nbytes
        now_s = self._clock()
        if now_s - self._last_s >= self._interval_s:
            self._last_s = now_s
            self.note(self._line(now_s - self._started_s))

    def note(self, message: str) -> None:
        """Print one line."""
        print(message, file=self._file, flush=True)

    def _line(self, elapsed_s: float) -> str:
        rate = (self._batches - self._initial) / elapsed_s if elapsed_s > 0 else 0.0
        size = f" ({format_bytes(self._bytes)})" if self._bytes else ""
        if self._total is None:
            return f"progress: {self._stream_name} {self._batches} batches{size}, {rate:.1f} batches/s"
        eta = format_duration((self._total - self._batches) / rate) if rate > 0 else "unknown"
        return (
            f"progress: {self._stream_name} {self._batches} of {self._total} batches{size}, "
            f"{rate:.1f} batches/s, ETA {eta}"
        )
