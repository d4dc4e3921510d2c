"""Put files in place so that a power loss never leaves a complete-looking empty or short one.

NOTE [durable rename]: a file's bytes are flushed to disk (``fsync``) before it is renamed to its final
name, and its folder is flushed after the rename, so that the new name is on disk too. Without the first
flush a file system may write the rename before the data: after a power loss the name exists with the
right size but holds zeros. Part files, downloaded files and state records all go through this module.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "WRITEBACK_BYTES",
    "fsync_file",
    "fsync_folder",
    "replace_durably",
    "start_writeback",
    "write_json_atomically",
]


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk, opening it by name without following a link at its end.

    Raises:
        OSError: if it cannot be opened or flushed (FileNotFoundError if it is gone).
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# NOTE [early writeback]: a big file's final fsync would wait for every byte still only in memory. While a
# file is written, each WRITEBACK_BYTES written are handed to the disk at once (Linux's sync_file_range
# with SYNC_FILE_RANGE_WRITE: it starts the writes and waits for none, and unlike fadvise's DONTNEED it
# keeps the pages cached for an extraction or a reader that follows), so the fsync finds little left to
# write. The fsync still does what makes the file durable: this is a hint only, and where it is missing or
# fails nothing changes. Never add SYNC_FILE_RANGE_WAIT_BEFORE or _AFTER here: a waiting call takes the
# file's pending write error, which this call ignores, and the final fsync would then report success for
# lost bytes. RocksDB's bytes_per_sync and PostgreSQL's backend_flush_after do the same.
WRITEBACK_BYTES = 8 << 20

_SYNC_FILE_RANGE_WRITE = 2  # from <linux/fs.h>


def start_writeback(descriptor: int, offset: int, length: int) -> None:
    """Start writing a range of an open file to disk without waiting (NOTE [early writeback])."""
    sync_file_range = _find_sync_file_range()
    if sync_file_range is not None:
        sync_file_range(descriptor, offset, length, _SYNC_FILE_RANGE_WRITE)  # a failure is a lost hint only


@functools.cache
def _find_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Return libc's sync_file_range, or None where there is none (not Linux, or no ctypes)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (new, renamed or removed names) to disk; a no-op where unsupported.

    Threads that ask at once share flushes (NOTE [group flush]).
    """
    if sys.platform == "win32":  # Windows cannot open a folder as a file; NTFS journals renames itself
        return
    key = os.path.abspath(folder)
    _flusher(_FOLDER_FLUSHERS, key).flush(lambda: _fsync_path(key))


# NOTE [group flush]: one fsync of a folder makes durable every rename in it that finished before the fsync
# began. Jobs renaming files into the same folder therefore share flushes: a thread whose rename was
# already covered by a flush that started after it returns at once. With 8 jobs of small files this
# saves most folder flushes (each ~0.3-3 ms on ext4, more under load). A run's committer renames a group
# of files and flushes their folders once (NOTE [group commit] in ``commit.py``).
#
# NOTE [no syncfs]: a file's bytes are flushed by an fsync of that file, never by ``syncfs``. One
# ``syncfs`` for a group of small files would replace many fsyncs, but it flushes everything written to
# the file system by every process: a download would wait for another program's output, and a training
# job writing checkpoints to the same disk would stall every group. Per-file fsyncs, made by the download
# threads in parallel and off the transfer path, measured no slower than one ``syncfs`` per group: the
# kernel's journal commits concurrent fsyncs together.


class _GroupFlusher:
    """Run a flush for every caller whose work finished before it began, one flush at a time."""

    def __init__(self) -> None:
        self._count_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._requested = 0
        self._flushed = 0

    def flush(self, run: Callable[[], None]) -> None:
        """Return once a flush that began after this call has ended, running ``run`` if none did."""
        with self._count_lock:
            self._requested += 1
            ticket = self._requested
        with self._flush_lock:
            if self._flushed >= ticket:
                return
            with self._count_lock:
                covered = self._requested  # work finished before this flush begins
            run()
            self._flushed = covered


def _flusher(flushers: dict[Any, _GroupFlusher], key: Any) -> _GroupFlusher:
    with _FLUSHERS_LOCK:
        flusher = flushers.get(key)
        if flusher is None:
            flusher = flushers[key] = _GroupFlusher()
    return flusher


def _fsync_path(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_FOLDER_FLUSHERS: dict[Any, _GroupFlusher] = {}
_FLUSHERS_LOCK = threading.Lock()


def replace_durably(source: Path, target: Path) -> None:
    """Flush ``source`` to disk, rename it to ``target`` and flush the folder (NOTE [durable rename]).

    Raises:
        OSError: if flushing or renaming fails; ``source`` is then left as it was.
    """
    fsync_file(source)
    os.replace(source, target)
    fsync_folder(target.parent)


def write_json_atomically(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically: a reader sees the old or the new file, never a mix.

    With ``durable`` the file and its folder are flushed too (NOTE [durable rename]). Several processes may
    write the same path at once; each writes its own temporary file, and the last rename wins.

    Raises:
        OSError: if the file cannot be written; no temporary file is left behind.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # unique to this thread
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            # json.dumps encodes in C; json.dump would encode in Python, at twice the time
            file.write(json.dumps(data, separators=(",", ":")))
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)
