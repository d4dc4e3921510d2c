"""Cut a restartable dataset stream into epochs: one pass each, or exactly ``epoch_size`` batches."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from emloop_ds.core.errors import StreamError
from emloop_ds.core.stream.shard import Shard, is_shardable
from emloop_ds.core.types import Batch

__all__ = ["EpochCutter"]

_NO_GATE = contextlib.nullcontext()
_PASS_STARTS_KEPT = 64
"""Pass starts remembered: more than a buffer can span, since it holds only the current epoch."""


class EpochCutter:
    """Read a stream function's batches epoch by epoch, calling it again for each pass of the stream.

    It is the ``BatchSource`` of an unbuffered ``StreamWrapper`` (reading in the reader's thread) and what
    the producer of a ``ThreadBuffer`` reads from. Without ``epoch_size`` an epoch is one pass; with it,
    every epoch has exactly ``epoch_size`` batches, continuing over restarts of the stream.

    A shardable stream is called with ``shard=Shard(rank, world_size, pass, start)``, passes numbered
    from 0 (``Shard(0, 1, pass)`` outside a data-parallel job), so that it can shuffle per pass as on
    workers and resume mid-pass without making the skipped batches (NOTE [resume position], wrapper.py).
    """

    __slots__ = (
        "_description",
        "_epoch_size",
        "_epoch_start",
        "_epochs_ended",
        "_has_ended_resumed_epoch",
        "_is_resumed_tail",
        "_is_shardable",
        "_is_stream_fresh",
        "_pass",
        "_pass_starts",
        "_produced",
        "_ranks",
        "_resume_start",
        "_stream",
        "_stream_fn",
    )

    def __init__(
        self,
        stream_fn: Callable[..., Iterable[Batch]],
        epoch_size: int,
        description: str,
        *,
        ranks: tuple[int, int] | None = None,
    ) -> None:
        """Read ``stream_fn`` pass by pass; ``ranks`` is ``(rank, world_size)`` in a data-parallel job."""
        self._stream_fn = stream_fn
        self._epoch_size = epoch_size
        self._description = description
        self._ranks = ranks or (0, 1)
        self._is_shardable = is_shardable(stream_fn)
        self._produced = 0  # batches made since construction (or resume)
        self._epoch_start = 0  # the value of _produced when the current epoch began
        self._epochs_ended = 0
        self._pass = -1
        self._pass_starts: list[tuple[int, int]] = []  # (pass number, _produced at its first batch)
        self._resume_start = 0
        self._is_resumed_tail = False
        self._has_ended_resumed_epoch = False
        self._stream: Iterator[Batch] | None = None
        self._is_stream_fresh = False

    def resume(self, pass_number: int, pass_batch: int, epoch_batch: int) -> None:
        """Continue at batch ``pass_batch`` of pass ``pass_number``, ``epoch_batch`` into the epoch."""
        self._pass = pass_number - 1
        self._resume_start = pass_batch
        self._epoch_start = -epoch_batch

    def position(self) -> tuple[int, int, int]:
        """Return the epoch ends made, the batches made, and the batches made when the last epoch ended."""
        return self._epochs_ended, self._produced, self._epoch_start

    @property
    def has_ended_resumed_epoch(self) -> bool:
        """Return whether a resume at a pass's end found it ended, ending the saved epoch without a None.

        Without ``epoch_size`` a state taken after a pass's last batch cannot know that the pass had
        ended; the resumed stream finds out, and that epoch counts as ended (NOTE [resume position]).
        """
        return self._has_ended_resumed_epoch

    def pass_position(self, batch: int) -> tuple[int, int]:
        """Return the pass of the batch numbered ``batch`` (as ``_produced`` counts) and its place in it."""
        for pass_number, start in reversed(self._pass_starts):
            if start <= batch:
                return pass_number, batch - start
        return self._pass + 1, self._resume_start  # nothing made yet since the resume

    def get_stream(self) -> Iterator[Batch]:
        """Possibly create and return raw dataset stream iterator."""
        if self._stream is None:
            self._pass += 1
            start, self._resume_start = self._resume_start, 0
            self._pass_starts.append((self._pass, self._produced - start))
            if len(self._pass_starts) > 2 * _PASS_STARTS_KEPT:
                del self._pass_starts[:-_PASS_STARTS_KEPT]
            if self._is_shardable:
                stream = self._stream_fn(shard=Shard(*self._ranks, self._pass, start))
            else:
                stream = self._stream_fn()
            try:
                self._stream = iter(stream)
            except TypeError as exc:
                raise TypeError(
                    f"{self._description}: stream_fn returned a {type(stream).__name__}, "
                    "not an iterable of batches"
                ) from exc
            self._is_stream_fresh = True
            self._is_resumed_tail = start > 0
            if start > 0 and not self._is_shardable:
                self._skip(start)
        return self._stream

    def _skip(self, count: int) -> None:
        """Fast-forward a resumed stream that cannot seek by making and dropping ``count`` batches."""
        logging.getLogger("emloop_ds").info(
            "%s resumes by making and dropping the %d batches of the pass already delivered; a stream "
            "taking `shard=Shard(0, 1)` and picking its batches with shard.select(...) resumes without them",
            self._description,
            count,
        )
        for _ in zip(range(count), self._stream or (), strict=False):
            pass

    def epoch_limit_reached(self) -> bool:
        """Return True if the number of produced batches reached ``epoch_size`` (never without a limit)."""
        return 0 < self._epoch_size <= self._produced - self._epoch_start

    def next_batch(self) -> Batch | None:
        """Return a single batch or None signaling epoch end.

        The epoch ends when the stream ends and there is no epoch size, or after ``epoch_size`` batches.

        Raises:
            StreamError: if a fixed-size epoch needs batches from a stream that yields none.
        """
        if 0 < self._epoch_size <= self._produced - self._epoch_start:
            self._end_epoch()
            return None
        while True:
            try:
                batch = next(self.get_stream())
            except StopIteration:
                is_fresh, self._stream = self._is_stream_fresh, None
                if is_fresh and self._is_resumed_tail:  # resumed right at a pass end: that epoch had ended
                    self._is_resumed_tail = False
                    if self._epoch_size <= 0 and self._epoch_start < 0:  # it had batches: not ended yet
                        self._end_epoch()
                        self._has_ended_resumed_epoch = True
                    continue
                if self._epoch_size <= 0:
                    self._end_epoch()
                    return None
                if is_fresh:
                    raise StreamError(
                        f"{self._description} yielded no batches, so an epoch of {self._epoch_size} batches "
                        "cannot be filled; make the stream yield batches"
                    ) from None
                continue
            self._is_stream_fresh = False
            self._produced += 1
            return batch

    def _end_epoch(self) -> None:
        self._epoch_start = self._produced
        self._epochs_ended += 1

    # The rest makes the cutter a BatchSource that reads in the reader's own thread.

    def start(self) -> None:
        """Do nothing: an unbuffered source has no background work."""

    def stop(self) -> None:
        """Do nothing: an unbuffered source has no background work."""

    def empty(self) -> bool:
        """Return True: nothing is prepared ahead."""
        return True

    @property
    def allow_buffering(self) -> AbstractContextManager[None]:
        """Return a context that does nothing: there is no buffer to fill."""
        return _NO_GATE
