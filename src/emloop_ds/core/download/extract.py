"""Extract one archive (zip or tar, plain or gz/bz2/xz) into ``data_root``: safely, all or nothing, tracked.

An extraction unpacks the archive into its own staging folder,
``.emloop-ds/staging/<archive>.<id>.extracting`` (``unpack``: NOTE [member checks], NOTE [size bound]),
merges that tree into ``data_root`` file by file (``merge``: NOTE [merge journal]) and then writes the
archive's record of what it extracted (``extracted_record``: NOTE [ownership index]). Writing the record is
the moment the archive counts as extracted; a failure before it rolls the merge back, and a crash before
it is rolled back by the next extraction (``staging``: NOTE [staging locks]), and the archive is extracted
again when next asked. No staging folder outlives its extraction, or the next one after a crash.
Extractions of the same archive must not overlap (the caller holds the archive's lock); extractions of
different archives may, from threads or processes.

NOTE [ownership index]: which files in ``data_root`` belong to which archive is kept per archive, in one
small JSON record, ``.emloop-ds/extracted/<archive>.json``, listing every file it put there (path, size,
sha256) and the id of the extraction run that wrote it. Writing it (atomically, fsynced) is the moment the
archive counts as extracted. An extraction reads only its own record: a path in it is the archive's own
earlier file, which it may replace; any other file in the way belongs to someone else. Only to name that
someone in the error does it read the other records. So the usual cost is one record, whatever the number
of archives and members (no shared index to read or rewrite per file, which would make n archives cost
n²), and concurrent extractions of different archives never write the same file. Two archives racing for
one path are decided by the file system: a file is placed with ``os.link``, which never replaces one.
The downloader may keep the returned list in its per-file state too; this record is what extraction trusts.

NOTE [identical files]: a member whose path already holds a file that the archive did not put there
earlier fails the archive, unless that file has the member's exact content (size and sha256): two
archives that both ship ``mnist/LICENSE`` are common and lose nothing by sharing it. Such a file is not
left alone, though, but swapped for the archive's own identical copy (the earlier one kept as a backup
until the archive is done), exactly as the archive's own earlier files are. Otherwise the archive's record
would list an inode that is not its own: if the extraction that placed it were rolled back (it fails
later, or was killed and is swept), it would remove that file from under a complete archive. Swapped, the
file is removed by no roll-back but its owner's, and an archive rolled back puts back what it replaced.
Only the file's inode, mode and modification time change, never its content.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path

from emloop_ds.core.download import staging
from emloop_ds.core.download.extract_options import ARCHIVE_SUFFIXES, archive_format, parse_size
from emloop_ds.core.download.extracted_record import ExtractedFile, read_record, write_record
from emloop_ds.core.download.merge import TreeMerge, list_staged, write_journal
from emloop_ds.core.download.state import STATE_DIR
from emloop_ds.core.download.unpack import unpack_archive
from emloop_ds.core.errors import ExtractionError, describe_exception

__all__ = [
    "ARCHIVE_SUFFIXES",
    "ExtractedFile",
    "archive_format",
    "default_max_extract_bytes",
    "extract_archive",
    "find_damaged",
    "parse_size",
    "remove_stale_staging",
]

_MIN_DEFAULT_MAX_BYTES = 10**9


def default_max_extract_bytes(archive_bytes: int) -> int:
    """Return the bound on an archive's extracted bytes when its entry sets no ``max_extract_size``."""
    return max(100 * archive_bytes, _MIN_DEFAULT_MAX_BYTES)


def extract_archive(
    archive: Path, data_root: Path, *, max_bytes: int, only: Collection[str] | None = None
) -> list[ExtractedFile]:
    """Extract ``archive`` into ``data_root``, all or nothing; return every file the archive has put there.

    Args:
        archive: the archive, anywhere on the file system.
        data_root: where its members go; ``.emloop-ds/`` in it holds the staging folder and records.
        max_bytes: the most bytes its regular files may hold together (the entry's ``max_extract_size``).
        only: restore just these member paths (posix, relative to ``data_root``), replacing whatever is at
            them; the other files of the archive are left as they are.

    Returns:
        Every file the archive has extracted (with ``only``: its earlier record updated with those).

    Raises:
        ExtractionError: if the archive is broken, unsafe, too big, or a member's path holds someone
            else's file (both named in the message); ``data_root`` then holds none of its new files.
    """
    kind = archive_format(archive.name)
    if kind is None:
        raise ExtractionError(
            f"cannot extract {archive.name}: not a zip or tar archive; set `extract: false`"
        )
    state_dir = data_root / STATE_DIR
    previous = read_record(state_dir, archive.name)
    if only is not None and not only:  # nothing to restore
        return [] if previous is None else sorted(previous.files.values(), key=lambda file: file.path)
    try:
        staging.remove_stale_staging(state_dir, archive.name)
        with staging.open_staging(state_dir, archive.name) as folder:
            return _extract_staged(archive, kind, data_root, folder, max_bytes, only)
    except OSError as exc:  # making, locking or removing staging folders
        raise _merge_error(archive.name, exc) from exc


def find_damaged(data_root: Path, files: Sequence[ExtractedFile]) -> list[ExtractedFile]:
    """Return the extracted files that are missing or whose size changed (one ``lstat`` each)."""
    damaged = []
    for file in files:
        try:
            status = (data_root / file.path).lstat()
        except OSError:
            damaged.append(file)
            continue
        if status.st_size != file.size or stat.S_ISDIR(status.st_mode):
            damaged.append(file)
    return damaged


def remove_stale_staging(archive_name: str, staging_parent: Path) -> None:
    """Undo and remove the staging folders that killed extractions left (NOTE [staging locks]).

    ``extract_archive`` does this itself first; ``staging_parent`` is ``<data_root>/.emloop-ds/staging``.
    """
    staging.remove_stale_staging(staging_parent.parent, archive_name)


def _extract_staged(
    archive: Path,
    kind: str,
    root: Path,
    folder: staging.StagingFolder,
    max_bytes: int,
    only: Collection[str] | None,
) -> list[ExtractedFile]:
    state_dir = root / STATE_DIR
    staging_path = folder.path
    wanted = None if only is None else set(only)
    tree = staging_path / "tree"
    tree.mkdir()
    written = unpack_archive(archive, kind, tree, max_bytes=max_bytes, only=wanted, reserved=STATE_DIR)
    files, folders = list_staged(tree, written, wanted)
    if wanted is not None and wanted - files.keys():
        missing = ", ".join(repr(path) for path in sorted(wanted - files.keys())[:5])
        raise ExtractionError(
            f"cannot restore {missing} from {archive.name}: the archive has no such members; "
            "run the download with --force to extract the archive again"
        )
    previous = read_record(state_dir, archive.name)
    earlier = {} if previous is None else previous.files
    merge = TreeMerge(archive.name, tree, root, state_dir, staging_path / "backup")
    journal = merge.plan(uuid.uuid4().hex, files, folders, earlier.keys() | (wanted or set()))
    kept = files if wanted is None else {**earlier, **files}
    try:
        write_journal(staging_path, journal)
        merge.apply(journal, files)
        write_record(state_dir, archive.name, journal.run, kept.values())
    except BaseException as exc:
        folder.is_kept = True  # with its journal, until the roll-back is complete (NOTE [staging locks])
        folder.is_kept = not merge.roll_back(journal)
        if isinstance(exc, OSError):
            raise _merge_error(archive.name, exc) from exc
        raise
    return sorted(kept.values(), key=lambda file: file.path)


def _merge_error(archive_name: str, exc: OSError) -> ExtractionError:
    return ExtractionError(
        f"cannot extract {archive_name}: cannot move its files into data_root ({describe_exception(exc)}); "
        "nothing was extracted. Check the free space and permissions of data_root"
    )
