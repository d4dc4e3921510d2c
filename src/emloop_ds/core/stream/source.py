"""Define ``BatchSource``: where a ``StreamWrapper`` gets its batches from.

The wrapper does the reader-facing part (arguments, ``with`` nesting, iteration, profiling) and asks one
source for each item. Sources:

- ``EpochCutter`` (``epochs.py``): reads the stream in the reader's thread; the unbuffered wrapper.
- ``ThreadBuffer`` (``buffer.py``): a producer thread prepares batches of the current epoch ahead.

A source that runs shards of the stream elsewhere (worker processes) implements the same protocol, so
nothing of its machinery reaches the simple paths.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from emloop_ds.core.types import Batch

__all__ = ["BatchSource"]


class BatchSource(Protocol):
    """Hand a ``StreamWrapper`` its items: batches in stream order and ``None`` at each epoch end."""

    def next_batch(self) -> Batch | None:
        """Return the next batch, or None at the end of the epoch; the next call starts the next epoch.

        Nothing of the next epoch may be produced before that call.
        """
        ...

    def start(self) -> None:
        """Start background work; called when the reader enters the wrapper's outermost ``with``."""
        ...

    def stop(self) -> None:
        """Stop background work, keeping what was prepared and the stream position; idempotent."""
        ...

    def empty(self) -> bool:
        """Return whether nothing is prepared ahead of the reader."""
        ...

    @property
    def allow_buffering(self) -> AbstractContextManager[None]:
        """Return a context inside which the source may prepare batches (see ``StreamWrapper``)."""
        ...
