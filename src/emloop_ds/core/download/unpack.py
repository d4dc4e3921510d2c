"""Unpack one archive into a private staging tree: members checked, sizes bounded, files hashed and fsynced.

Every member passes NOTE [member checks] first; tar members also pass tarfile's ``filter='data'``.
Regular files are written here rather than by tarfile or zipfile, so that each is hashed (sha256) and
counted while it is written. Each is fsynced before the unpacking returns, and so before it is placed into
``data_root``: by a few threads while the unpacking goes on, since an fsync waits on the disk rather than
the CPU and the file system commits concurrent fsyncs together (many times faster than one by one on a
busy disk). NOTE [size bound]: the bytes of the regular
files are bounded twice by ``max_bytes``: by the sizes the archive declares, before a member is written (a
zip's whole table up front, a tar's running total member by member, since a compressed tar cannot be
listed without decompressing it), and by the bytes actually written. The staging tree is thrown away on
any error, so an exceeded bound leaves nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, NoReturn

from emloop_ds.core.download.archive_member import Location, MemberChecker
from emloop_ds.core.download.durable import fsync_file
from emloop_ds.core.errors import ExtractionError, describe_exception

__all__ = ["SizeBound", "unpack_archive", "write_member"]

_CHUNK_BYTES = 1 << 20
_SYNC_THREADS = 8
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


class SizeBound:
    """Count an archive's bytes against ``max_bytes``; see NOTE [size bound]."""

    def __init__(self, archive_name: str, max_bytes: int) -> None:
        """Start with nothing counted."""
        self._archive_name = archive_name
        self._max_bytes = max_bytes
        self._declared = 0
        self._written = 0

    def declare(self, size: int) -> None:
        """Count ``size`` declared bytes, before they are written.

        Raises:
            ExtractionError: if the declared bytes exceed the bound.
        """
        self._declared += size
        if self._declared > self._max_bytes:
            self._refuse(f"its members declare at least {self._declared:,} bytes")

    def write(self, size: int) -> None:
        """Count ``size`` bytes about to be written.

        Raises:
            ExtractionError: if the written bytes exceed the bound.
        """
        self._written += size
        if self._written > self._max_bytes:
            self._refuse(f"its members hold at least {self._written:,} bytes (more than they declare)")

    def _refuse(self, found: str) -> NoReturn:
        raise ExtractionError(
            f"refused to extract {self._archive_name}: {found}, more than its max_extract_size of "
            f"{self._max_bytes:,} bytes; nothing was extracted. If you trust the archive, raise "
            "max_extract_size for it in the config (for example `max_extract_size: 20GB`)"
        )


def unpack_archive(
    archive: Path,
    kind: str,
    tree: Path,
    *,
    max_bytes: int,
    only: Collection[str] | None,
    reserved: str,
) -> dict[str, tuple[int, str]]:
    """Unpack the ``kind`` (``"tar"`` or ``"zip"``) ``archive`` into the empty folder ``tree``.

    With ``only``, regular files and hard links are unpacked only at those posix paths; folders and
    symbolic links are always unpacked (they cost nothing and later paths may lead through them).

    Returns:
        The size and sha256 of each regular file written, by its posix path in ``tree``.

    Raises:
        ExtractionError: if the archive is broken, has an unsafe member, or exceeds ``max_bytes``.
    """
    checker = MemberChecker(archive.name, reserved)
    bound = SizeBound(archive.name, max_bytes)
    try:
        with _FileSyncer() as syncer:
            unpack = _unpack_zip if kind == "zip" else _unpack_tar
            written = unpack(archive, tree, checker, bound, only, syncer)
            syncer.wait()
    except OSError as exc:  # writing into the staging tree
        raise broken_archive_error(archive.name, exc) from exc
    return written


class _FileSyncer:
    """fsync written files from a few threads; ``wait`` returns once all are durable (see the module doc)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="emloop-ds-fsync")
        self._pending: list[Future[None]] = []

    def __enter__(self) -> _FileSyncer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, path: Path) -> None:
        """Have ``path`` fsynced."""
        self._pending.append(self._pool.submit(_fsync_file, path))

    def wait(self) -> None:
        """Wait until every file submitted is durable.

        Raises:
            OSError: the first fsync that failed.
        """
        for future in self._pending:
            future.result()


def _fsync_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # a later member of that name replaced it, synced itself
        fsync_file(path)


def write_member(
    source: IO[bytes], path: Path, bound: SizeBound, mode: int | None = None, mtime: float | None = None
) -> tuple[int, str]:
    """Write ``source`` to a new file at ``path``, counted by ``bound`` and hashed; return its size and hash.

    Whatever was at ``path`` (an earlier member of that name, or a link) is replaced, never written through.
    """
    descriptor = _create(path, 0o600 if mode is not None else 0o666)
    digest = hashlib.sha256()
    size = 0
    with open(descriptor, "wb", buffering=0) as target:
        while chunk := source.read(_CHUNK_BYTES):
            bound.write(len(chunk))
            digest.update(chunk)
            target.write(chunk)
            size += len(chunk)
        if mode is not None:
            os.fchmod(descriptor, mode)
        if mtime is not None:
            os.utime(descriptor, (mtime, mtime))
    return size, digest.hexdigest()


def _create(path: Path, mode: int) -> int:
    """Create ``path`` for writing, with its folders, replacing any entry of that name (never through it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, mode)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        os.unlink(path)  # an earlier member of that name, or a link: replaced, never written through
    return os.open(path, flags, mode)


def broken_archive_error(archive_name: str, exc: BaseException) -> ExtractionError:
    """Return the error for an archive that cannot be read, or for a disk that cannot be written."""
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return ExtractionError(
            f"cannot extract {archive_name}: cannot write into data_root ({exc.strerror}); "
            "free disk space or check the permissions of data_root"
        )
    return ExtractionError(
        f"cannot extract {archive_name}: the archive is broken or unreadable ({describe_exception(exc)}); "
        "run the download with --force, or ask the data's publisher"
    )


def _unpack_tar(
    archive: Path,
    tree: Path,
    checker: MemberChecker,
    bound: SizeBound,
    only: Collection[str] | None,
    syncer: _FileSyncer,
) -> dict[str, tuple[int, str]]:
    import lzma
    import tarfile
    import zlib

    written: dict[str, tuple[int, str]] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:  # one pass: a compressed archive is decompressed once
                path = _posix(checker.check(member.name, _tar_kind(member), member.linkname))
                if not path:
                    continue
                if (member.isreg() or member.islnk()) and only is not None and path not in only:
                    continue
                if member.isreg():
                    bound.declare(member.size)
                    filtered = tarfile.data_filter(member, str(tree))
                    source = tar.extractfile(member)
                    if source is None:  # not reached: regular members always have data
                        raise tarfile.ExtractError(f"no data for {member.name!r}")
                    written[path] = write_member(source, tree / path, bound, filtered.mode, member.mtime)
                    syncer.submit(tree / path)
                    continue
                tar.extract(member, tree, set_attrs=not member.isdir(), filter="data")
                written.pop(path, None)
                if member.islnk():
                    _count_copied_link(tree / path, bound)
                    syncer.submit(tree / path)
            _read_to_the_end(tar.fileobj)
    except tarfile.FilterError as exc:
        name = exc.tarinfo.name if exc.tarinfo is not None else "?"
        raise ExtractionError(
            f"refused to extract {archive.name}: member {name!r} is unsafe ({exc}); "
            "ask the data's publisher for a safe archive"
        ) from exc
    except (tarfile.TarError, EOFError, KeyError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise broken_archive_error(archive.name, exc) from exc
    checker.check_links()
    return written


def _read_to_the_end(stream: Any) -> None:
    """Read the rest of a (compressed) tar: gzip, bzip2 and xz check their data's CRC only at its end.

    tarfile stops at the end-of-archive blocks, and tar itself has no checksum of the members' data, so
    without this a damaged member of a .tar.gz would go unnoticed.
    """
    while stream.read(_CHUNK_BYTES):
        pass


def _count_copied_link(path: Path, bound: SizeBound) -> None:
    """Count a hard link that tarfile had to write as a copy (its target was not unpacked, with ``only``)."""
    status = path.lstat()
    if stat.S_ISREG(status.st_mode) and status.st_nlink == 1:
        bound.write(status.st_size)


def _tar_kind(member: Any) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdev():  # character and block devices and FIFOs
        return "device"
    return "dir" if member.isdir() else "file"


def _unpack_zip(
    archive: Path,
    tree: Path,
    checker: MemberChecker,
    bound: SizeBound,
    only: Collection[str] | None,
    syncer: _FileSyncer,
) -> dict[str, tuple[int, str]]:
    import zipfile

    written: dict[str, tuple[int, str]] = {}
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = []
            for info in zipped.infolist():
                kind, target = _zip_kind(zipped, info)
                path = _posix(checker.check(info.filename, kind, target))
                if path and (info.is_dir() or only is None or path in only):
                    members.append((info, path))
            checker.check_links()
            bound.declare(sum(info.file_size for info, _ in members if not info.is_dir()))
            for info, path in members:
                if info.is_dir():
                    (tree / path).mkdir(parents=True, exist_ok=True)
                else:  # a zip's links become small files holding their target, as zipfile makes them
                    with zipped.open(info) as source:
                        written[path] = write_member(source, tree / path, bound)
                    syncer.submit(tree / path)
    # zipfile raises RuntimeError for encrypted and NotImplementedError for unsupported members
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise broken_archive_error(archive.name, exc) from exc
    return written


def _zip_kind(zipped: Any, info: Any) -> tuple[str, str]:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symlink", zipped.read(info).decode("utf-8", "replace")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        return "device", ""
    return ("dir" if info.is_dir() else "file"), ""


def _posix(location: Location) -> str:
    return "/".join(location)
