"""Put files in place so that a power loss never leaves a complete-looking empty or short one.

NOTE [durable rename]: a file's bytes are flushed to disk (``fsync``) before it is renamed to its final
name, and its folder is flushed after the rename, so that the new name is on disk too. Without the first
flush a file system may write the rename before the data: after a power loss the name exists with the
right size but holds zeros. Part files, downloaded files and state records all go through this module.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "GROUP_DATA_FLUSH_MAX_BYTES",
    "flush_file_data",
    "fsync_file",
    "fsync_folder",
    "has_syncfs",
    "needs_own_flush",
    "replace_durably",
    "syncfs",
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


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (new, renamed or removed names) to disk; a no-op where unsupported.

    Threads that ask at once share flushes (NOTE [group flush]).
    """
    if sys.platform == "win32":  # Windows cannot open a folder as a file; NTFS journals renames itself
        return
    key = os.path.abspath(folder)
    _flusher(_FOLDER_FLUSHERS, key).flush(lambda: _fsync_path(key))


def flush_file_data(descriptor: int, size_bytes: int) -> None:
    """Flush the bytes written to an open file to disk, small files in groups (NOTE [group data flush]).

    Raises:
        OSError: if the file system reports that the data could not be written.
    """
    if needs_own_flush(size_bytes):
        os.fsync(descriptor)
        return
    _flusher(_DATA_FLUSHERS, os.fstat(descriptor).st_dev).flush(lambda: syncfs(descriptor))


def needs_own_flush(size_bytes: int) -> bool:
    """Tell whether a file of ``size_bytes`` is flushed alone rather than by a ``syncfs`` of a group."""
    return _syncfs is None or size_bytes > GROUP_DATA_FLUSH_MAX_BYTES


def has_syncfs() -> bool:
    """Tell whether ``syncfs`` is available (Linux)."""
    return _syncfs is not None


GROUP_DATA_FLUSH_MAX_BYTES = 1024 * 1024
"""Files up to this size are flushed in groups; a larger one alone, where a group would gain little."""

# NOTE [group flush]: one fsync of a folder makes durable every rename in it that finished before the fsync
# began. Jobs renaming files into the same folder therefore share flushes: a thread whose rename was
# already covered by a flush that started after it returns at once. With 8 jobs of small files this
# saves most folder flushes (each ~0.3-3 ms on ext4, more under load).
#
# NOTE [group data flush]: the same holds for the bytes of files. A run's downloads are flushed in groups
# by its committer (NOTE [group commit] in ``commit.py``); a file downloaded alone (``download_file`` with
# ``put_in_place``) is flushed here. On Linux, one ``syncfs`` makes durable
# everything written to a file system before it began, so threads that finished writing small files
# at once share one: the first to arrive flushes for all whose writes it covers, the others return at
# once or join the next flush. This is the group commit of git's ``core.fsyncMethod=batch`` and of
# databases, and it keeps the guarantee of NOTE [durable rename]: a file is renamed into place (and
# recorded) only after a flush that began after its last write returned. Elsewhere, and for files
# above GROUP_DATA_FLUSH_MAX_BYTES (whose own fsync costs little beside their transfer, while a
# ``syncfs`` would flush every other large file in progress), each file is fsynced alone.


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


def _load_syncfs() -> Callable[[int], int] | None:
    """Return libc's ``syncfs`` (Linux 2.6.39+; errors reported since 5.8), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def syncfs(descriptor: int) -> None:
    """Flush everything written to the file system of ``descriptor`` before the call (Linux only).

    Raises:
        OSError: if the file system reports that data could not be written.
    """
    assert _syncfs is not None
    if _syncfs(descriptor) != 0:
        import ctypes

        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


_syncfs = _load_syncfs()
_FOLDER_FLUSHERS: dict[Any, _GroupFlusher] = {}
_DATA_FLUSHERS: dict[Any, _GroupFlusher] = {}
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
