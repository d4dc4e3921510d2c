"""Hold the build lock of a cache, so that concurrent builders wait for one of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import FileLock

__all__ = ["build_lock"]


def build_lock(path: Path, timeout_s: float = -1) -> FileLock:
    """Return the lock of building the cache at ``path``: a file beside the cache folder.

    Use it as ``with build_lock(path):``; ``timeout_s=-1`` waits for as long as another builder holds it.
    The OS frees the lock if its holder dies.

    Raises:
        CacheWriteError: if the folder of the lock file cannot be created.
    """
    from filelock import FileLock

    from emloop_ds.core.cache.writer import CacheWriteError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheWriteError(
            f"cannot create the cache folder {path.parent}: {exc.strerror}; "
            "make it writable or point the cache elsewhere (--cache-dir, $EMLOOP_DS_CACHE)"
        ) from exc
    return FileLock(path.parent / f".{path.name}.lock", timeout=timeout_s, thread_local=False)
