"""Tests of safe, complete-or-nothing extraction, with unsafe tar and zip archives built here."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from emloop_ds import ExtractionError
from emloop_ds.core.download.extract import ExtractedFile, archive_format, extract_archive


def _tar(path: Path, *members: tuple[str, str, str | bytes]) -> Path:
    """Write a tar archive of (kind, name, data or link target) members; the compression follows the name."""
    mode = {".gz": "w:gz", ".bz2": "w:bz2", ".xz": "w:xz"}.get(path.suffix, "w")
    with tarfile.open(path, mode) as tar:
        for kind, name, content in members:
            info = tarfile.TarInfo(name)
            data = content if isinstance(content, bytes) else b""
            if kind == "file":
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = str(content)
            else:
                info.type = {
                    "chardev": tarfile.CHRTYPE,
                    "blockdev": tarfile.BLKTYPE,
                    "fifo": tarfile.FIFOTYPE,
                }[kind]
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return path


def _zip(path: Path, *members: tuple[str, bytes, int]) -> Path:
    """Write a zip archive of (name, data, unix mode) members."""
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zipped.writestr(info, data)
    return path


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


def _extract(archive: Path, data_root: Path) -> list[ExtractedFile]:
    return extract_archive(archive, data_root, max_bytes=10**9)


def _tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if ".emloop-ds" not in path.parts}


@pytest.mark.parametrize("name", ["set.tar", "set.tar.gz", "set.tgz", "set.tar.bz2", "set.tar.xz"])
def test_tar_archives_are_extracted(tmp_path: Path, data_root: Path, name: str) -> None:
    archive = _tar(
        tmp_path / name,
        ("dir", "set", ""),
        ("file", "set/a.txt", b"alpha"),
        ("symlink", "set/link.txt", "a.txt"),
        ("hardlink", "set/hard.txt", "set/a.txt"),
    )
    _extract(archive, data_root)
    assert (data_root / "set" / "a.txt").read_bytes() == b"alpha"
    assert (data_root / "set" / "link.txt").read_bytes() == b"alpha"
    assert (data_root / "set" / "hard.txt").read_bytes() == b"alpha"
    assert not (data_root / ".emloop-ds" / "staging").exists() or not any(
        (data_root / ".emloop-ds" / "staging").iterdir()
    )


def test_zip_archive_is_extracted_into_existing_folders(tmp_path: Path, data_root: Path) -> None:
    (data_root / "set").mkdir()
    (data_root / "set" / "kept.txt").write_text("kept")
    archive = _zip(
        tmp_path / "set.zip", ("set/a.txt", b"alpha", 0o100644), ("set/sub/b.txt", b"beta", 0o100644)
    )
    _extract(archive, data_root)
    assert _tree(data_root) == {"set", "set/kept.txt", "set/a.txt", "set/sub", "set/sub/b.txt"}
    assert (data_root / "set" / "sub" / "b.txt").read_bytes() == b"beta"


UNSAFE_TARS = {  # case: (members, the member refused)
    "absolute path": ([("file", "/tmp/evil.txt", b"x")], "/tmp/evil.txt"),
    "dot-dot": ([("file", "set/../../evil.txt", b"x")], "set/../../evil.txt"),
    "absolute symlink": ([("symlink", "set/etc", "/etc")], "set/etc"),
    "escaping symlink": ([("symlink", "set/up", "../../outside")], "set/up"),
    "symlink chain": ([("symlink", "a", "."), ("symlink", "d", "a/a/.."), ("file", "d/evil.txt", b"x")], "d"),
    "link made escaping later": ([("symlink", "d", "a/.."), ("symlink", "a", "."), ("file", "ok", b"")], "d"),
    "write through escaping link": ([("symlink", "up", "sub/../.."), ("file", "up/evil.txt", b"x")], "up"),
    "escaping hardlink": ([("hardlink", "set/hard", "../outside.txt")], "set/hard"),
    "absolute hardlink": ([("hardlink", "set/hard", "/etc/passwd")], "set/hard"),
    "character device": ([("chardev", "set/tty", "")], "set/tty"),
    "block device": ([("blockdev", "set/disk", "")], "set/disk"),
    "fifo": ([("fifo", "set/pipe", "")], "set/pipe"),
}


@pytest.mark.parametrize("case", UNSAFE_TARS)
def test_unsafe_tar_is_refused_naming_the_member(tmp_path: Path, data_root: Path, case: str) -> None:
    members, refused = UNSAFE_TARS[case]
    archive = _tar(tmp_path / "unsafe.tar.gz", ("file", "set/first.txt", b"safe"), *members)
    before = _tree(tmp_path)
    with pytest.raises(ExtractionError) as caught:
        _extract(archive, data_root)
    message = str(caught.value)
    assert message.startswith(f"refused to extract unsafe.tar.gz: member {refused!r} ")
    assert "nothing was extracted" in message
    assert _tree(data_root) == set()  # complete-or-nothing: not even the safe first member
    assert _tree(tmp_path) == before  # nothing written outside data_root


UNSAFE_ZIPS = {
    "dot-dot": ("../evil.txt", b"x", 0o100644),
    "absolute path": ("/tmp/evil.txt", b"x", 0o100644),
    "drive letter": ("C:/evil.txt", b"x", 0o100644),
    "backslash dot-dot": ("set\\..\\..\\evil.txt", b"x", 0o100644),
    "escaping symlink": ("set/up", b"../../outside", stat.S_IFLNK | 0o777),
    "device": ("set/tty", b"", stat.S_IFCHR | 0o600),
}


@pytest.mark.parametrize("case", UNSAFE_ZIPS)
def test_unsafe_zip_is_refused_naming_the_member(tmp_path: Path, data_root: Path, case: str) -> None:
    member = UNSAFE_ZIPS[case]
    archive = _zip(tmp_path / "unsafe.zip", ("set/first.txt", b"safe", 0o100644), member)
    before = _tree(tmp_path)
    with pytest.raises(ExtractionError) as caught:
        _extract(archive, data_root)
    assert f"refused to extract unsafe.zip: member {member[0]!r}" in str(caught.value)
    assert _tree(data_root) == set()
    assert _tree(tmp_path) == before


def test_link_in_data_root_leading_outside_is_not_written_through(tmp_path: Path, data_root: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_root / "set").symlink_to(outside)
    archive = _tar(tmp_path / "set.tar", ("file", "set/a.txt", b"alpha"))
    with pytest.raises(ExtractionError, match="is a link to a folder outside data_root"):
        _extract(archive, data_root)
    assert list(outside.iterdir()) == []


def test_broken_archive_leaves_nothing(tmp_path: Path, data_root: Path) -> None:
    archive = _tar(
        tmp_path / "set.tar.gz", *[("file", f"set/{n}.bin", bytes(range(256)) * 400) for n in range(5)]
    )
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ExtractionError) as caught:
        _extract(archive, data_root)
    assert "cannot extract set.tar.gz: the archive is broken or unreadable" in str(caught.value)
    assert _tree(data_root) == set()


def test_not_a_zip_is_reported(tmp_path: Path, data_root: Path) -> None:
    archive = tmp_path / "set.zip"
    archive.write_bytes(b"this is no zip")
    with pytest.raises(ExtractionError, match="broken or unreadable"):
        _extract(archive, data_root)


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("a.zip", "zip"),
        ("a.TAR.GZ", "tar"),
        ("a.tgz", "tar"),
        ("a.tar.xz", "tar"),
        ("a.gz", None),
        ("a", None),
    ],
)
def test_archive_format_follows_the_name(filename: str, kind: str | None) -> None:
    assert archive_format(filename) == kind
