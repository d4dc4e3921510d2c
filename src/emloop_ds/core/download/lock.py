"""Hold an exclusive lock on a file across threads and processes (``filelock``); the OS frees it if the
holder dies. ``FileLocks`` locks a dataset's files by bucket (NOTE [lock buckets])."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from emloop_ds.core.errors import DownloadCancelledError

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["BUCKETS", "FileLocks", "bucket_of", "hold_lock"]

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
    lock = _acquire(path, on_wait, cancel)
    try:
        yield
    finally:
        lock.release()


def _acquire(path: Path, on_wait: Callable[[], None] | None, cancel: threading.Event | None) -> BaseFileLock:
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
    return lock


BUCKETS = 256
"""How many lock files guard a data root's files (NOTE [lock buckets])."""

# NOTE [lock buckets]: a file is guarded by the lock file of its bucket (a hash of its name), not by a lock
# file of its own: creating a file costs ~1 ms of system CPU on ext4, which was a quarter of a small file's
# whole cost, whereas the 256 bucket files are made once per data root. Threads of one process share a
# bucket's lock: the first takes it, the others join it, and the last to leave releases it; they never
# work on the same file (a run's filenames are unique), so only other processes are kept out. Another
# process waits for the bucket, that is for the few files of it in the works (a file holds its bucket from
# before it waits for a transfer slot until it is recorded), then finds its file complete.
# No thread holds two buckets, so buckets cannot deadlock. A run hands its files to the threads in bucket
# order (``fetch.py``), so the files of one bucket are in the works together and share one acquisition of
# its lock: 2,000 files took ~1,950 acquisitions in name order and take ~390 in bucket order (filelock's
# acquisition costs ~0.2 ms of CPU: it resolves the path and tracks forks on each).


def bucket_of(filename: str) -> int:
    """Return the bucket whose lock guards ``filename`` (NOTE [lock buckets])."""
    return zlib.crc32(filename.encode()) % BUCKETS


class FileLocks:
    """Lock the files of one data root across processes, one bucket lock per group of names."""

    def __init__(self, locks_dir: Path, cancel: threading.Event | None = None) -> None:
        """Keep the bucket lock files in ``locks_dir``; ``cancel`` stops waits."""
        self._locks_dir = locks_dir
        self._cancel = cancel
        self._changed = threading.Condition()
        self._holders: dict[int, int] = {}
        """Threads of this process inside each bucket held."""
        self._locks: dict[int, BaseFileLock] = {}
        self._acquiring: set[int] = set()

    def path(self, filename: str) -> Path:
        """Return the lock file guarding ``filename``."""
        return self._locks_dir / f"bucket-{bucket_of(filename):03d}.lock"

    @contextmanager
    def hold(self, filename: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Keep other processes away from ``filename`` within the block (see ``acquire``).

        Raises:
            DownloadCancelledError: if cancelled while waiting.
            OSError: if the lock file cannot be created.
        """
        self.acquire(filename, on_wait)
        try:
            yield
        finally:
            self.release(filename)

    def acquire(self, filename: str, on_wait: Callable[[], None] | None = None) -> None:
        """Keep other processes away from ``filename`` until ``release`` (from any thread of this process).

        ``on_wait`` is called once if another process holds the bucket, before waiting for it.

        Raises:
            DownloadCancelledError: if cancelled while waiting.
            OSError: if the lock file cannot be created.
        """
        bucket = bucket_of(filename)
        with self._changed:
            while bucket in self._acquiring:  # another thread of ours is taking it: join it after
                self._changed.wait()
            is_held = bucket in self._holders
            if is_held:
                self._holders[bucket] += 1
            else:
                self._acquiring.add(bucket)
        if is_held:
            return
        try:
            lock = _acquire(self.path(filename), on_wait, self._cancel)
        except BaseException:
            with self._changed:
                self._acquiring.discard(bucket)
                self._changed.notify_all()
            raise
        with self._changed:
            self._acquiring.discard(bucket)
            self._holders[bucket] = 1
            self._locks[bucket] = lock
            self._changed.notify_all()

    def release(self, filename: str) -> None:
        """Give back what ``acquire`` took for ``filename``."""
        bucket = bucket_of(filename)
        with self._changed:
            self._holders[bucket] -= 1
            if self._holders[bucket] == 0:
                del self._holders[bucket]
                self._locks.pop(bucket).release()
