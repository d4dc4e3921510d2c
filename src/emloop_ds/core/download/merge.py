"""Merge a staged tree into ``data_root`` file by file: atomically, all or nothing, beside other extractions.

NOTE [merge journal]: archives that share folders (``mnist/`` from two tarballs) extract at the same time
from threads and processes, so a folder is never moved as a whole: folders are made with ``exist_ok`` and
each file (or symbolic link) gets a new name in ``data_root`` with ``os.link``, which fails rather than
replace a file that another extraction put there a moment earlier. Before the first change, the plan is
written durably to ``journal.json`` in the archive's staging folder: the folders it creates, and each
placed path with the inode of its staged file (a hard link keeps it). A file that the merge replaces (the
archive's own earlier file, or an identical one) is first kept as a hard link in ``backup/``. Rolling back
undoes exactly that and nothing else: a path is removed, or its backup put back, only while it still holds
that inode (or nothing), so another archive's or a user's file that came in meanwhile stays; created
folders are removed if empty. The same roll-back runs after a failure
in this process and, from the journal, after a crash (the next extraction of the archive). Files are
fsynced before they are placed (``unpack``), folders after.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from emloop_ds.core.download.durable import fsync_folder, write_json_atomically
from emloop_ds.core.download.extracted_record import ExtractedFile, find_owner
from emloop_ds.core.errors import ExtractionError

__all__ = [
    "MergeJournal",
    "Placement",
    "TreeMerge",
    "list_staged",
    "make_folders",
    "read_journal",
    "write_journal",
]

_JOURNAL = "journal.json"
_VERSION = 1
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}
_PARENT_RETRIES = 5
"""How often a placement remakes its folder after another archive's roll-back removed it."""


@dataclass(frozen=True)
class Placement:
    """A path the merge puts into ``data_root``, the inode it gets, and whether it replaces our own file."""

    path: str
    inode: int
    replaces: bool
    """Whether it may replace what is there whatever its content: the archive's own earlier file."""


@dataclass(frozen=True)
class MergeJournal:
    """The plan of one merge: what rolling it back must undo (NOTE [merge journal])."""

    run: str
    folders: list[str]
    placements: list[Placement]


def write_journal(staging: Path, journal: MergeJournal) -> None:
    """Write ``journal`` durably into the staging folder ``staging``."""
    placements = [[place.path, place.inode, place.replaces] for place in journal.placements]
    data = {"version": _VERSION, "run": journal.run, "folders": journal.folders, "placements": placements}
    write_json_atomically(staging / _JOURNAL, data)


def read_journal(staging: Path) -> MergeJournal | None:
    """Return the journal in ``staging``, or ``None`` if the merge never started."""
    try:
        data = json.loads((staging / _JOURNAL).read_text(encoding="utf-8"))
        placements = [
            Placement(str(path), int(inode), bool(replaces)) for path, inode, replaces in data["placements"]
        ]
        return MergeJournal(str(data["run"]), [str(folder) for folder in data["folders"]], placements)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # written atomically before the first change: without it nothing was changed


def list_staged(
    tree: Path, written: dict[str, tuple[int, str]], only: Collection[str] | None
) -> tuple[dict[str, ExtractedFile], list[str]]:
    """Describe the staged files (and links) and list the folders to merge, parents first.

    ``written`` gives the hashes taken while unpacking; other files (hard links) are hashed here. With
    ``only``, just those files and the folders above them.
    """
    files: dict[str, ExtractedFile] = {}
    folders: list[str] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        with os.scandir(tree / folder) as entries:
            for entry in entries:
                path = f"{folder}/{entry.name}" if folder else entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append(path)
                    pending.append(path)
                elif only is None or path in only:
                    files[path] = _describe(Path(entry.path), path, written)
    if only is not None:
        folders = list(
            {"/".join(path.split("/")[:end]) for path in files for end in range(1, path.count("/") + 1)}
        )
    return files, sorted(folders)


class TreeMerge:
    """Plan, apply and roll back the merge of one staged tree into ``data_root``."""

    def __init__(self, archive_name: str, tree: Path, root: Path, state_dir: Path, backup: Path) -> None:
        """Merge ``tree`` into ``root``, keeping replaced files in ``backup`` until the caller removes it."""
        self._archive_name = archive_name
        self._tree = tree
        self._root = root
        self._real_root = root.resolve()
        self._state_dir = state_dir
        self._backup = backup

    def plan(
        self, run: str, files: dict[str, ExtractedFile], folders: Iterable[str], owned: Collection[str]
    ) -> MergeJournal:
        """Check every path against ``data_root`` and return the plan; ``owned`` paths are ours to replace.

        A file already there with the same content (another archive's or a user's) is accepted as it is.

        Raises:
            ExtractionError: naming the member and what is in its way, before anything is changed.
        """
        new_folders = [folder for folder in folders if self._needs_folder(folder)]
        placements = []
        for path, file in files.items():
            try:
                status = os.lstat(self._root / path)
            except (FileNotFoundError, NotADirectoryError):
                status = None
            if status is not None and stat.S_ISDIR(status.st_mode):
                raise self._conflict(path, "which is a folder")
            is_owned = path in owned
            if status is not None and not is_owned and not self._holds(path, file):
                raise self._conflict(path, self._owner(path))
            inode = os.lstat(self._tree / path).st_ino
            placements.append(Placement(path, inode, replaces=is_owned))
        return MergeJournal(run, new_folders, placements)

    def apply(self, journal: MergeJournal, files: dict[str, ExtractedFile]) -> None:
        """Make the folders and place the files of ``journal``, then fsync the folders changed.

        Raises:
            ExtractionError: if a file appeared in the way meanwhile (the caller rolls back).
            OSError: if the file system refuses (the caller rolls back).
        """
        for folder in journal.folders:
            make_folders(self._root / folder)
        changed = {str(self._root / folder).rpartition("/")[0] for folder in journal.folders}
        for placement in journal.placements:
            self._place(placement, files[placement.path])
            changed.add(str(self._root / placement.path).rpartition("/")[0])
        for folder in sorted(changed):
            fsync_folder(Path(folder))

    def roll_back(self, journal: MergeJournal) -> bool:
        """Undo what ``journal`` planned and was done; return whether all of it could be undone.

        What the file system refuses is skipped, so that the rest is still undone; the caller then keeps
        the journal for a later attempt.
        """
        is_complete = True
        for placement in reversed(journal.placements):
            target = self._root / placement.path
            backup = self._backup / placement.path
            try:
                inode: int | None = os.lstat(target).st_ino
            except OSError:
                inode = None
            try:
                if os.path.lexists(backup) and inode in (None, placement.inode):
                    make_folders(target.parent)
                    os.replace(backup, target)
                elif inode == placement.inode:
                    os.unlink(target)
            except OSError:
                is_complete = False
        for folder in reversed(journal.folders):
            try:
                os.rmdir(self._root / folder)
            except OSError:
                continue  # another archive put files there meanwhile: the folder is theirs too
        if is_complete:
            with contextlib.suppress(OSError):  # make the undoing durable before the journal goes
                for parent in {(self._root / place.path).parent for place in journal.placements}:
                    fsync_folder(parent)
        return is_complete

    def _needs_folder(self, folder: str) -> bool:
        target = self._root / folder
        try:
            status = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            return True
        if stat.S_ISLNK(status.st_mode) and target.is_dir():
            if not target.resolve().is_relative_to(self._real_root):
                raise ExtractionError(
                    f"refused to extract {self._archive_name}: {target} is a link to a folder outside "
                    f"data_root {self._real_root}; nothing was extracted. Remove that link"
                )
            return False
        if not stat.S_ISDIR(status.st_mode):
            raise self._conflict(folder, "which is a file, where the archive has a folder")
        return False

    def _place(self, placement: Placement, file: ExtractedFile) -> None:
        """Put the staged file at its path: a new name, or in place of our own or an identical file."""
        staged = str(self._tree / placement.path)
        target = str(self._root / placement.path)
        for _ in range(_PARENT_RETRIES):
            if not os.path.lexists(target) and _link_new(staged, target):
                return
            if not placement.replaces and not self._holds(placement.path, file):
                raise self._conflict(placement.path, self._owner(placement.path))
            if self._swap(placement.path, staged, target):
                return
        raise FileNotFoundError(errno.ENOENT, "it keeps appearing and disappearing", target)

    def _swap(self, path: str, staged: str, target: str) -> bool:
        """Keep the file at ``target`` as a backup and put ours in its place; ``False`` if it vanished.

        NOTE [identical files] in ``extract`` says why an identical file is swapped too, not left alone.
        """
        backup = self._backup / path
        backup.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(target, backup, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            os.rename(target, backup)
        os.replace(staged, target)
        return True

    def _holds(self, path: str, file: ExtractedFile) -> bool:
        """Tell whether ``data_root`` already holds ``file`` at ``path``, with the same content."""
        target = self._root / path
        try:
            status = os.lstat(target)
            if status.st_size != file.size:
                return False
            if stat.S_ISLNK(status.st_mode):
                return _sha256_bytes(os.fsencode(os.readlink(target))) == file.sha256
            return stat.S_ISREG(status.st_mode) and _sha256_file(target) == file.sha256
        except OSError:
            return False

    def _owner(self, path: str) -> str:
        owner = find_owner(self._state_dir, path, excluding=self._archive_name)
        if owner is None:
            return "a file that no archive of this data_root extracted"
        return f"which archive {owner} extracted, with different content"

    def _conflict(self, path: str, what: str) -> ExtractionError:
        return ExtractionError(
            f"cannot extract {self._archive_name}: its member {path!r} would overwrite {self._root / path}, "
            f"{what}; nothing was extracted. Move that away, or give the archives different data_root folders"
        )


def _link_new(staged: str, target: str) -> bool:
    """Give the staged entry the new name ``target``; ``False`` if ``target`` exists (never replaced)."""
    for _ in range(_PARENT_RETRIES):
        try:
            os.link(staged, target, follow_symlinks=False)
        except FileExistsError:
            return False
        except FileNotFoundError:
            if not os.path.lexists(staged):
                raise
            make_folders(os.path.dirname(target))  # another archive's roll-back removed it
            continue
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(target):  # a file system without hard links: not atomic against a race
                return False
            os.rename(staged, target)
        return True
    raise FileNotFoundError(errno.ENOENT, "its folder keeps disappearing", target)


def make_folders(folder: Path | str) -> None:
    """Make ``folder`` and its parents, while other extractions may make or remove (empty) ones too.

    ``os.makedirs(exist_ok=True)`` raises if a folder it saw existing is removed before it checks again.
    """
    for _ in range(_PARENT_RETRIES):
        try:
            os.makedirs(folder, exist_ok=True)
        except (FileExistsError, FileNotFoundError):
            if os.path.lexists(folder) and not os.path.isdir(folder):
                raise
            continue
        return
    os.makedirs(folder, exist_ok=True)


def _describe(path: Path, relative: str, written: dict[str, tuple[int, str]]) -> ExtractedFile:
    if path.is_symlink():
        target = os.fsencode(os.readlink(path))
        return ExtractedFile(relative, len(target), _sha256_bytes(target))
    known = written.get(relative)
    if known is not None:
        return ExtractedFile(relative, *known)
    return ExtractedFile(relative, path.stat().st_size, _sha256_file(path))


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path | str) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
