"""Hold an exclusive lock on a file across threads and processes (``filelock``); the OS frees it if the
holder dies."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from emloop_ds.core.errors import DownloadCancelledError

__all__ = ["hold_lock"]

_POLL_S = 0.05
"""How often a wait for another holder checks for cancellation."""


@contextmanager
def hold_lock(
    path: Path,
    on_wait: Callable[[], None] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    Each call opens its own lock, so threads of one process exclude each other as processes do.

    Args:
        path: the lock file; filelock creates it and its folders if missing.
        on_wait: called once if the lock is held by someone else, before waiting for it.
        cancel: an event that stops the wait.

    Raises:
        DownloadCancelledError: if ``cancel`` is set while waiting.
        OSError: if the lock file cannot be created.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(path, thread_local=False)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if on_wait is not None:
            on_wait()
        is_cancelled = cancel.is_set if cancel is not None else None
        try:
            lock.acquire(poll_interval=_POLL_S, cancel_check=is_cancelled)
        except Timeout:  # raised only when cancelled: the wait has no deadline
            raise DownloadCancelledError(f"interrupted while waiting for the lock {path}") from None
    try:
        yield
    finally:
        lock.release()
