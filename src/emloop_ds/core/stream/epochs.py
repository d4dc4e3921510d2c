"""Cut a restartable dataset stream into epochs: one pass each, or exactly ``epoch_size`` batches."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from emloop_ds.core.errors import StreamError
from emloop_ds.core.stream.shard import Shard
from emloop_ds.core.types import Batch

__all__ = ["EpochCutter"]

_NO_GATE = contextlib.nullcontext()


class EpochCutter:
    """Read a stream function's batches epoch by epoch, calling it again for each pass of the stream.

    It is the ``BatchSource`` of an unbuffered ``StreamWrapper`` (reading in the reader's thread) and what
    the producer of a ``ThreadBuffer`` reads from. Without ``epoch_size`` an epoch is one pass; with it,
    every epoch has exactly ``epoch_size`` batches, continuing over restarts of the stream.
    """

    __slots__ = (
        "_batch_count",
        "_description",
        "_epoch_size",
        "_is_stream_fresh",
        "_pass",
        "_ranks",
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
        """Read ``stream_fn()`` each pass; with ``ranks=(rank, world_size)``, ``stream_fn(shard=...)``.

        The shard of pass ``p`` (numbered from 0) is ``Shard(rank, world_size, p)``.
        """
        self._stream_fn = stream_fn
        self._epoch_size = epoch_size
        self._description = description
        self._ranks = ranks
        self._batch_count = 0
        self._pass = -1
        self._stream: Iterator[Batch] | None = None
        self._is_stream_fresh = False

    def get_stream(self) -> Iterator[Batch]:
        """Possibly create and return raw dataset stream iterator."""
        if self._stream is None:
            self._pass += 1
            if self._ranks is None:
                stream = self._stream_fn()
            else:
                stream = self._stream_fn(shard=Shard(self._ranks[0], self._ranks[1], self._pass))
            try:
                self._stream = iter(stream)
            except TypeError as exc:
                raise TypeError(
                    f"{self._description}: stream_fn returned a {type(stream).__name__}, "
                    "not an iterable of batches"
                ) from exc
            self._is_stream_fresh = True
        return self._stream

    def epoch_limit_reached(self) -> bool:
        """Return True if the number of produced batches reached ``epoch_size`` (never without a limit)."""
        return 0 < self._epoch_size <= self._batch_count

    def next_batch(self) -> Batch | None:
        """Return a single batch or None signaling epoch end.

        The epoch ends when the stream ends and there is no epoch size, or after ``epoch_size`` batches.

        Raises:
            StreamError: if a fixed-size epoch needs batches from a stream that yields none.
        """
        if self.epoch_limit_reached():
            self._batch_count = 0
            return None
        while True:
            try:
                batch = next(self.get_stream())
            except StopIteration:
                is_fresh, self._stream = self._is_stream_fresh, None
                if self._epoch_size <= 0:
                    self._batch_count = 0
                    return None
                if is_fresh:
                    raise StreamError(
                        f"{self._description} yielded no batches, so an epoch of {self._epoch_size} batches "
                        "cannot be filled; make the stream yield batches"
                    ) from None
                continue
            self._is_stream_fresh = False
            self._batch_count += 1
            return batch

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
