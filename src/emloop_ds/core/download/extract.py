"""Extract one archive (zip or tar, plain or gz/bz2/xz) safely and complete-or-nothing.

Every member is checked before it is written (NOTE [member checks]); tar members also pass tarfile's
``filter='data'``. Members go to a staging folder inside the state folder of ``data_root`` and are moved
into ``data_root`` only when the whole archive is out, so a failure leaves nothing half-extracted.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emloop_ds.core.download.archive_member import MemberChecker
from emloop_ds.core.errors import ExtractionError, describe_exception

__all__ = ["ARCHIVE_SUFFIXES", "archive_format", "extract_archive", "remove_stale_staging"]

ARCHIVE_SUFFIXES = {
    ".zip": "zip",
    ".tar": "tar",
    ".tar.gz": "tar",
    ".tgz": "tar",
    ".tar.bz2": "tar",
    ".tbz2": "tar",
    ".tar.xz": "tar",
    ".txz": "tar",
}
"""File name endings of the archives that are extracted by default, and their format."""

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def archive_format(filename: str) -> str | None:
    """Return ``"zip"`` or ``"tar"`` if ``filename`` names a recognised archive, else ``None``."""
    name = filename.lower()
    for suffix, kind in ARCHIVE_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def extract_archive(archive: Path, destination: Path, staging_parent: Path) -> None:
    """Extract ``archive`` into ``destination`` through a staging folder made in ``staging_parent``.

    ``staging_parent`` must be on the same file system as ``destination`` (it is inside it).

    Raises:
        ExtractionError: if the archive is broken, has an unsafe member (named in the message) or cannot
            be moved into place; nothing is then added to ``destination``.
    """
    kind = archive_format(archive.name)
    if kind is None:
        raise ExtractionError(
            f"cannot extract {archive.name}: not a zip or tar archive; set `extract: false`"
        )
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{archive.name}.", suffix=".extracting", dir=staging_parent))
    try:
        if kind == "zip":
            _extract_zip(archive, staging)
        else:
            _extract_tar(archive, staging)
        _move_tree(staging, destination, destination.resolve(), archive.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(archive_name: str, staging_parent: Path) -> None:
    """Delete staging folders that a killed extraction of ``archive_name`` left behind."""
    if staging_parent.is_dir():
        for path in staging_parent.glob("*.extracting"):
            if path.name.startswith(archive_name + "."):
                shutil.rmtree(path, ignore_errors=True)


def _extract_tar(archive: Path, staging: Path) -> None:
    import lzma
    import tarfile
    import zlib

    checker = MemberChecker(archive.name)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:  # one pass: a compressed archive is decompressed once
                checker.check(member.name, _tar_kind(member), member.linkname)
                tar.extract(member, staging, set_attrs=not member.isdir(), filter="data")
    except tarfile.FilterError as exc:
        name = exc.tarinfo.name if exc.tarinfo is not None else "?"
        raise ExtractionError(
            f"refused to extract {archive.name}: member {name!r} is unsafe ({exc}); "
            "ask the data's publisher for a safe archive"
        ) from exc
    except (tarfile.TarError, EOFError, KeyError, OSError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise _broken(archive, exc) from exc
    checker.check_links()


def _tar_kind(member: Any) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdev():  # character and block devices and FIFOs
        return "device"
    return "dir" if member.isdir() else "file"


def _extract_zip(archive: Path, staging: Path) -> None:
    import zipfile

    checker = MemberChecker(archive.name)
    try:
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                kind, target = _zip_kind(zipped, info)
                checker.check(info.filename, kind, target)
            checker.check_links()
            zipped.extractall(staging)  # zip links become small files holding their target
    # zipfile raises RuntimeError for encrypted and NotImplementedError for unsupported members
    except (zipfile.BadZipFile, EOFError, NotImplementedError, OSError, RuntimeError, ValueError) as exc:
        raise _broken(archive, exc) from exc


def _zip_kind(zipped: Any, info: Any) -> tuple[str, str]:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symlink", zipped.read(info).decode("utf-8", "replace")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        return "device", ""
    return ("dir" if info.is_dir() else "file"), ""


def _broken(archive: Path, exc: BaseException) -> ExtractionError:
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return ExtractionError(
            f"cannot extract {archive.name}: cannot write into data_root ({exc.strerror}); "
            "free disk space or check the permissions of data_root"
        )
    return ExtractionError(
        f"cannot extract {archive.name}: the archive is broken or unreadable ({describe_exception(exc)}); "
        "run the download with --force, or ask the data's publisher"
    )


def _move_tree(source: Path, destination: Path, root: Path, archive_name: str) -> None:
    """Move the staged tree into ``destination`` (inside ``root``), merging into folders already there."""
    destination.mkdir(parents=True, exist_ok=True)
    for entry in _entries(source):
        target = destination / entry.name
        if entry.is_dir(follow_symlinks=False) and target.is_dir():
            if not target.resolve().is_relative_to(root):
                raise ExtractionError(
                    f"refused to extract {archive_name}: {target} is a link to a folder outside data_root "
                    f"{root}; remove that link"
                )
            _move_tree(Path(entry.path), target, root, archive_name)
            continue
        try:
            os.replace(entry.path, target)  # replaces a link at target itself, never what it points to
        except OSError as exc:
            raise ExtractionError(
                f"cannot extract {archive_name}: cannot put {entry.name} at {target} ({exc.strerror}); "
                "move the existing file or folder away"
            ) from exc


def _entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        yield from list(entries)
