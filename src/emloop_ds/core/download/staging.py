"""Staging folders of extractions: each made and held under a lock, and those of killed extractions undone.

NOTE [staging locks]: a live extraction holds an exclusive ``flock`` on its staging folder
(``.emloop-ds/staging/<archive>.<id>.extracting``) until the folder is removed; the system drops it when
the process dies, however it dies. So a staging folder whose lock can be taken is stale: its extraction
was killed. Every extraction first undoes the stale folders (rolling back a merge that its journal shows
was under way and not committed, NOTE [merge journal]) and removes them (one whose roll-back the file
system refused in part is kept, journal and all, for the next attempt): those of its own archive, waiting
for any other process that is doing the same, and those of other archives that nobody holds, so that a
killed run leaves nothing behind even if that archive is never extracted again. A new folder is locked
before it is used and checked to still exist then, since a sweep may have taken it in between.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emloop_ds.core.download.durable import fsync_folder
from emloop_ds.core.download.extracted_record import read_record
from emloop_ds.core.download.merge import TreeMerge, read_journal

__all__ = ["StagingFolder", "open_staging", "remove_stale_staging"]

_STAGING_DIR = "staging"
_SUFFIX = ".extracting"
_ATTEMPTS = 5


@dataclass
class StagingFolder:
    """A live extraction's staging folder; ``is_kept`` keeps it (with its journal) for the next sweep."""

    path: Path
    is_kept: bool = False


@contextlib.contextmanager
def open_staging(state_dir: Path, archive_name: str) -> Iterator[StagingFolder]:
    """Make a new staging folder for ``archive_name`` in ``state_dir``, locked; remove it on leaving.

    Raises:
        OSError: if it cannot be made.
    """
    parent = state_dir / _STAGING_DIR
    path, descriptor = _make_locked(parent, archive_name)
    staging = StagingFolder(path)
    try:
        yield staging
    finally:
        if not staging.is_kept:
            shutil.rmtree(path, ignore_errors=True)
        os.close(descriptor)
        _remove_if_empty(parent)


def remove_stale_staging(state_dir: Path, archive_name: str) -> None:
    """Undo and remove the staging folders of killed extractions (NOTE [staging locks]).

    Waits for the folders of ``archive_name`` that another process holds; skips other archives' held ones.
    """
    parent = state_dir / _STAGING_DIR
    try:
        stagings = sorted(parent.iterdir())
    except FileNotFoundError:  # none yet, or another extraction removed it once empty
        return
    for staging in stagings:
        owner = staging.name.removesuffix(_SUFFIX).rpartition(".")[0]
        if not staging.name.endswith(_SUFFIX) or not owner:
            continue
        descriptor = _lock(staging, wait=owner == archive_name)
        if descriptor is None:
            continue
        try:
            if _undo(state_dir, owner, staging):
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(descriptor)
    _remove_if_empty(parent)


def _undo(state_dir: Path, archive_name: str, staging: Path) -> bool:
    """Roll back the merge that ``staging``'s journal shows under way; return whether all is undone."""
    journal = read_journal(staging)
    if journal is None:
        return True  # killed before its merge began: nothing in data_root to undo
    record = read_record(state_dir, archive_name)
    if record is not None and record.run == journal.run:
        return True  # killed after its record: extracted
    merge = TreeMerge(archive_name, staging / "tree", state_dir.parent, state_dir, staging / "backup")
    return merge.roll_back(journal)


def _make_locked(parent: Path, archive_name: str) -> tuple[Path, int]:
    for _ in range(_ATTEMPTS):
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f"{archive_name}.", suffix=_SUFFIX, dir=parent))
        except (FileNotFoundError, FileExistsError):  # mkdir saw the parent, then a sweep removed it
            continue
        descriptor = _lock(staging, wait=True)
        if descriptor is not None:
            fsync_folder(parent)  # the folder holds the journal, which must outlive a power loss
            return staging, descriptor
    raise FileNotFoundError(f"{parent} keeps disappearing while other extractions clean it up")


def _lock(folder: Path, *, wait: bool) -> int | None:
    """Lock ``folder``; ``None`` if it is gone, or (without ``wait``) held by a live extraction."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None
    import fcntl  # POSIX only, like the hard links and O_NOFOLLOW of the extraction

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(descriptor), os.stat(folder)):
            return descriptor
    except (BlockingIOError, FileNotFoundError):
        pass  # held by a live extraction, or removed by the one that held it
    os.close(descriptor)
    return None


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: another extraction is using it
        folder.rmdir()
