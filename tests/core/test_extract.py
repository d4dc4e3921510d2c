"""Tests of safe, complete-or-nothing extraction, with unsafe tar and zip archives built here."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from emloop_ds import ConfigError, ExtractionError
from emloop_ds.core.download import extract as extract_module
from emloop_ds.core.download.extract import (
    ExtractedFile,
    archive_format,
    default_max_extract_bytes,
    extract_archive,
    find_damaged,
    parse_size,
    remove_stale_staging,
)
from emloop_ds.core.download.extracted_record import read_record
from emloop_ds.core.download.unpack import SizeBound, write_member
from tests.archives import tar_gz


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


def _state(data_root: Path) -> Path:
    return data_root / ".emloop-ds"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_extracted_files_are_returned_and_recorded_with_their_hashes(tmp_path: Path, data_root: Path) -> None:
    archive = _tar(
        tmp_path / "set.tar.gz",
        ("file", "./set/a.txt", b"alpha"),
        ("file", "set/sub/b.bin", bytes(range(256)) * 5000),
        ("symlink", "set/link.txt", "a.txt"),
        ("hardlink", "set/hard.txt", "set/a.txt"),
    )
    files = _extract(archive, data_root)
    assert files == [
        ExtractedFile("set/a.txt", 5, _sha256(b"alpha")),
        ExtractedFile("set/hard.txt", 5, _sha256(b"alpha")),
        ExtractedFile("set/link.txt", 5, _sha256(b"a.txt")),  # a link: its target's text, as lstat sees it
        ExtractedFile("set/sub/b.bin", 1_280_000, _sha256(bytes(range(256)) * 5000)),
    ]
    assert read_record(_state(data_root), "set.tar.gz") is not None
    assert read_record(_state(data_root), "set.tar.gz").files == {file.path: file for file in files}  # type: ignore[union-attr]
    assert find_damaged(data_root, files) == []
    assert not (_state(data_root) / "staging").exists()


STATE_FOLDER_MEMBERS = {  # case: (members, the member refused)
    "file": ([("file", ".emloop-ds/manifest.json", b"{}")], ".emloop-ds/manifest.json"),
    "dot-slash": ([("file", "./.emloop-ds/locks/x.lock", b"")], "./.emloop-ds/locks/x.lock"),
    "other case": ([("file", ".EMLOOP-DS/manifest.json", b"{}")], ".EMLOOP-DS/manifest.json"),
    "folder": ([("dir", ".emloop-ds", "")], ".emloop-ds"),
    "link to it": ([("symlink", "state", ".emloop-ds"), ("file", "ok.txt", b"")], "state"),
    "through a link": (
        [("symlink", "set/up", ".."), ("file", "set/up/.emloop-ds/manifest.json", b"{}")],
        "set/up/.emloop-ds/manifest.json",
    ),
}


@pytest.mark.parametrize("case", STATE_FOLDER_MEMBERS)
def test_member_under_the_state_folder_is_refused_with_its_name(
    tmp_path: Path, data_root: Path, case: str
) -> None:
    members, refused = STATE_FOLDER_MEMBERS[case]
    _state(data_root).mkdir()
    (_state(data_root) / "manifest.json").write_text("ours")
    archive = _tar(tmp_path / "evil.tar", ("file", "set/first.txt", b"safe"), *members)
    with pytest.raises(ExtractionError) as caught:
        _extract(archive, data_root)
    assert f"member {refused!r} is inside .emloop-ds/, the folder where emloop-ds keeps its state" in str(
        caught.value
    )
    assert _tree(data_root) == set()
    assert (_state(data_root) / "manifest.json").read_text() == "ours"


def test_zip_member_under_the_state_folder_is_refused(tmp_path: Path, data_root: Path) -> None:
    archive = _zip(
        tmp_path / "evil.zip", ("set/a.txt", b"a", 0o100644), (".emloop-ds/x.json", b"{}", 0o100644)
    )
    with pytest.raises(ExtractionError, match=r"member '.emloop-ds/x.json' is inside .emloop-ds/"):
        _extract(archive, data_root)
    assert _tree(data_root) == set()


def test_declared_sizes_above_the_bound_are_refused_before_writing(tmp_path: Path, data_root: Path) -> None:
    members = [("file", f"set/{n}.bin", bytes(1000)) for n in range(5)]
    archive = _tar(tmp_path / "set.tar.gz", *members)
    with pytest.raises(ExtractionError) as caught:
        extract_archive(archive, data_root, max_bytes=4999)
    assert "declare at least 5,000 bytes, more than its max_extract_size of 4,999 bytes" in str(caught.value)
    assert "raise max_extract_size" in str(caught.value)
    assert _tree(data_root) == set()
    assert not (_state(data_root) / "staging").exists()
    assert len(extract_archive(archive, data_root, max_bytes=5000)) == 5


def test_zip_declared_sizes_are_checked_before_anything_is_written(tmp_path: Path, data_root: Path) -> None:
    archive = _zip(tmp_path / "big.zip", ("a.bin", bytes(600), 0o100644), ("b.bin", bytes(600), 0o100644))
    with pytest.raises(ExtractionError, match="declare at least 1,200 bytes"):
        extract_archive(archive, data_root, max_bytes=1000)
    assert _tree(data_root) == set()


def test_actual_bytes_above_the_bound_are_refused(tmp_path: Path, data_root: Path) -> None:
    # A hard link declares no bytes; restored alone, its target is not there to link to, so it is
    # written as a copy: bytes that only the count of bytes actually written sees.
    archive = _tar(
        tmp_path / "set.tar", ("file", "set/a.bin", bytes(600)), ("hardlink", "set/b.bin", "set/a.bin")
    )
    _extract(archive, data_root)
    (data_root / "set" / "b.bin").unlink()
    with pytest.raises(
        ExtractionError, match="hold at least 600 bytes .more than they declare., more than its max"
    ):
        extract_archive(archive, data_root, max_bytes=500, only=["set/b.bin"])
    assert not (data_root / "set" / "b.bin").exists()
    assert not (_state(data_root) / "staging").exists()


def test_a_source_longer_than_declared_is_cut_off_by_the_bound(tmp_path: Path) -> None:
    bound = SizeBound("set.zip", max_bytes=10_000)
    bound.declare(100)
    with pytest.raises(ExtractionError, match="hold at least 1,048,576 bytes"):
        write_member(io.BytesIO(bytes(50_000_000)), tmp_path / "out.bin", bound)
    assert (tmp_path / "out.bin").stat().st_size == 0  # nothing of the chunk that crossed the bound


def test_a_corrupt_member_late_in_the_archive_leaves_nothing(tmp_path: Path, data_root: Path) -> None:
    (data_root / "set").mkdir()
    (data_root / "set" / "mine.txt").write_text("mine")
    members = [("file", f"set/{n:03}.bin", random.Random(n).randbytes(2000)) for n in range(200)]
    archive = _tar(tmp_path / "set.tar.gz", *members)
    data = bytearray(archive.read_bytes())
    data[-2000] ^= 0xFF  # one bit flipped in the last member's compressed data
    archive.write_bytes(bytes(data))
    with pytest.raises(ExtractionError, match="the archive is broken or unreadable"):
        _extract(archive, data_root)
    assert _tree(data_root) == {"set", "set/mine.txt"}
    assert not (_state(data_root) / "staging").exists()
    assert read_record(_state(data_root), "set.tar.gz") is None


def test_a_users_file_at_a_members_path_fails_the_archive_naming_both(
    tmp_path: Path, data_root: Path
) -> None:
    (data_root / "set").mkdir()
    (data_root / "set" / "b.txt").write_text("the user's")
    archive = _tar(tmp_path / "set.tar", ("file", "set/a.txt", b"a"), ("file", "set/b.txt", b"b"))
    with pytest.raises(ExtractionError) as caught:
        _extract(archive, data_root)
    message = str(caught.value)
    assert (
        f"cannot extract set.tar: its member 'set/b.txt' would overwrite {data_root / 'set' / 'b.txt'}"
        in message
    )
    assert "a file that no archive of this data_root extracted; nothing was extracted" in message
    assert _tree(data_root) == {"set", "set/b.txt"}
    assert (data_root / "set" / "b.txt").read_text() == "the user's"


def test_another_archives_different_file_fails_the_archive_naming_both(
    tmp_path: Path, data_root: Path
) -> None:
    first = _tar(tmp_path / "first.tar", ("file", "set/shared.txt", b"first"), ("file", "set/1.txt", b"1"))
    second = _tar(tmp_path / "second.tar", ("file", "set/2.txt", b"2"), ("file", "set/shared.txt", b"second"))
    _extract(first, data_root)
    with pytest.raises(ExtractionError) as caught:
        _extract(second, data_root)
    assert "cannot extract second.tar: its member 'set/shared.txt' would overwrite" in str(caught.value)
    assert "which archive first.tar extracted, with different content" in str(caught.value)
    assert _tree(data_root) == {"set", "set/shared.txt", "set/1.txt"}
    assert (data_root / "set" / "shared.txt").read_bytes() == b"first"


def test_a_file_with_identical_content_is_shared(tmp_path: Path, data_root: Path) -> None:
    first = _tar(tmp_path / "first.tar", ("file", "set/LICENSE", b"MIT"), ("file", "set/1.txt", b"1"))
    second = _tar(tmp_path / "second.tar", ("file", "set/LICENSE", b"MIT"), ("file", "set/2.txt", b"2"))
    _extract(first, data_root)
    assert {file.path for file in _extract(second, data_root)} == {"set/LICENSE", "set/2.txt"}
    assert (data_root / "set" / "LICENSE").read_bytes() == b"MIT"
    assert _tree(data_root) == {"set", "set/LICENSE", "set/1.txt", "set/2.txt"}


def test_a_users_identical_file_is_put_back_when_the_archive_fails(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data_root / "set").mkdir()
    (data_root / "set" / "LICENSE").write_bytes(b"MIT")
    inode = (data_root / "set" / "LICENSE").stat().st_ino
    archive = _tar(tmp_path / "set.tar", ("file", "set/LICENSE", b"MIT"), ("file", "set/a.txt", b"a"))

    def fail_to_record(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(extract_module, "write_record", fail_to_record)  # after every file is in place
    with pytest.raises(ExtractionError, match="No space left on device"):
        _extract(archive, data_root)
    assert _tree(data_root) == {"set", "set/LICENSE"}
    assert (data_root / "set" / "LICENSE").stat().st_ino == inode


def test_re_extracting_replaces_the_archives_own_earlier_files(tmp_path: Path, data_root: Path) -> None:
    archive = _tar(tmp_path / "set.tar", ("file", "set/a.txt", b"old"), ("file", "set/gone.txt", b"x"))
    _extract(archive, data_root)
    (data_root / "set" / "a.txt").write_text("edited by hand")
    _tar(archive, ("file", "set/a.txt", b"new version"))  # the same name, a new version of the archive
    assert _extract(archive, data_root) == [ExtractedFile("set/a.txt", 11, _sha256(b"new version"))]
    assert (data_root / "set" / "a.txt").read_bytes() == b"new version"


def test_a_failed_merge_rolls_back_placed_files_and_restores_replaced_ones(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [("file", f"set/{n:02}.txt", b"old") for n in range(20)]
    archive = _tar(tmp_path / "set.tar", *members)
    _extract(archive, data_root)
    _tar(archive, *[("file", f"set/{n:02}.txt", b"new") for n in range(40)])
    real_replace = os.replace
    calls = []

    def replace_until_the_disk_is_full(source: Any, target: Any) -> None:
        calls.append(target)
        if len(calls) == 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_until_the_disk_is_full)
    with pytest.raises(ExtractionError) as caught:
        _extract(archive, data_root)
    monkeypatch.undo()
    assert "cannot extract set.tar: cannot move its files into data_root" in str(caught.value)
    assert "No space left on device" in str(caught.value)
    assert _tree(data_root) == {"set", *(f"set/{n:02}.txt" for n in range(20))}
    assert {(data_root / "set" / f"{n:02}.txt").read_bytes() for n in range(20)} == {b"old"}
    assert read_record(_state(data_root), "set.tar").files["set/00.txt"].sha256 == _sha256(b"old")  # type: ignore[union-attr]
    assert not (_state(data_root) / "staging").exists()


def test_deleted_and_changed_files_are_found_and_restored_alone(tmp_path: Path, data_root: Path) -> None:
    archive = _tar(
        tmp_path / "set.tar.gz", *[("file", f"set/{n}/{n}.txt", f"file {n}".encode()) for n in range(50)]
    )
    files = _extract(archive, data_root)
    (data_root / "set" / "7" / "7.txt").unlink()
    shutil.rmtree(data_root / "set" / "8")
    (data_root / "set" / "9" / "9.txt").write_text("changed by hand")
    (data_root / "set" / "10" / "10.txt").write_text("same si")  # same size: a stat cannot tell
    untouched = (data_root / "set" / "1" / "1.txt").stat()
    damaged = find_damaged(data_root, files)
    assert [file.path for file in damaged] == ["set/7/7.txt", "set/8/8.txt", "set/9/9.txt"]
    restored = extract_archive(archive, data_root, max_bytes=10**9, only=[file.path for file in damaged])
    assert restored == files
    assert find_damaged(data_root, files) == []
    assert (data_root / "set" / "9" / "9.txt").read_text() == "file 9"
    assert (data_root / "set" / "1" / "1.txt").stat().st_ino == untouched.st_ino
    assert (data_root / "set" / "1" / "1.txt").stat().st_mtime_ns == untouched.st_mtime_ns
    assert not (_state(data_root) / "staging").exists()


def test_restoring_a_path_the_archive_lacks_is_an_error(tmp_path: Path, data_root: Path) -> None:
    archive = _tar(tmp_path / "set.tar", ("file", "set/a.txt", b"a"))
    _extract(archive, data_root)
    with pytest.raises(
        ExtractionError, match=r"cannot restore 'set/zzz.txt' from set.tar: the archive has no"
    ):
        extract_archive(archive, data_root, max_bytes=10**9, only=["set/a.txt", "set/zzz.txt"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12345, 12345),
        ("12345", 12345),
        ("100MB", 100 * 10**6),
        ("5GB", 5 * 10**9),
        ("5 gb", 5 * 10**9),
        ("5GiB", 5 * 2**30),
        ("1.5GB", 1_500_000_000),
        ("2kB", 2000),
        ("3KiB", 3072),
        ("1TB", 10**12),
        ("7B", 7),
    ],
)
def test_sizes_are_parsed_with_decimal_and_binary_units(value: int | str, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "GB", "5 XB", "-1GB", "0", 0, -5, "1e9", "five", True, 1.5, None])
def test_nonsense_sizes_are_refused_naming_the_value(value: Any) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"invalid max_extract_size {value!r}: give bytes")):
        parse_size(value)


def test_default_bound_is_100_times_the_archive_and_at_least_1_gb() -> None:
    assert default_max_extract_bytes(1000) == 10**9
    assert default_max_extract_bytes(50 * 10**6) == 5 * 10**9


def test_an_archive_of_2000_members_is_extracted_checked_and_restored(
    tmp_path: Path, data_root: Path
) -> None:
    members = {f"set/{n % 20:02}/{n:04}.bin": random.Random(n).randbytes(64) for n in range(2000)}
    archive = tmp_path / "set.tar.gz"
    archive.write_bytes(tar_gz(members))
    files = _extract(archive, data_root)
    assert {file.path: file.sha256 for file in files} == {
        path: _sha256(data) for path, data in members.items()
    }
    assert find_damaged(data_root, files) == []
    lost = files[::100]
    for file in lost:
        (data_root / file.path).unlink()
    assert find_damaged(data_root, files) == lost
    assert extract_archive(archive, data_root, max_bytes=10**9, only=[file.path for file in lost]) == files
    assert find_damaged(data_root, files) == []


def test_zip_members_are_hashed_and_restored_alone(tmp_path: Path, data_root: Path) -> None:
    archive = _zip(
        tmp_path / "set.zip",
        ("set/", b"", stat.S_IFDIR | 0o755),
        ("set/a.txt", b"alpha", 0o100644),
        ("set/sub/b.txt", b"beta", 0o100644),
    )
    files = _extract(archive, data_root)
    assert files == [
        ExtractedFile("set/a.txt", 5, _sha256(b"alpha")),
        ExtractedFile("set/sub/b.txt", 4, _sha256(b"beta")),
    ]
    (data_root / "set" / "sub" / "b.txt").write_text("longer than before")
    assert find_damaged(data_root, files) == files[1:]
    assert extract_archive(archive, data_root, max_bytes=10**9, only=["set/sub/b.txt"]) == files
    assert (data_root / "set" / "sub" / "b.txt").read_bytes() == b"beta"


def test_a_folder_where_a_file_was_counts_as_damaged(tmp_path: Path, data_root: Path) -> None:
    files = _extract(_tar(tmp_path / "set.tar", ("file", "set/a", b"")), data_root)
    (data_root / "set" / "a").unlink()
    (data_root / "set" / "a").mkdir()
    assert find_damaged(data_root, files) == files


def test_a_roll_back_the_file_system_refuses_is_kept_and_finished_by_the_next_run(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _tar(tmp_path / "set.tar", *[("file", f"set/{n:02}.txt", b"data") for n in range(20)])
    real_link = os.link
    links = []

    def link_until_the_disk_is_full(*args: Any, **kwargs: Any) -> None:
        links.append(args)
        if len(links) == 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_link(*args, **kwargs)

    def refuse_unlink(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "link", link_until_the_disk_is_full)
    monkeypatch.setattr(os, "unlink", refuse_unlink)
    with pytest.raises(ExtractionError, match="No space left on device"):
        _extract(archive, data_root)
    monkeypatch.undo()
    assert len(_tree(data_root / "set")) == 9  # placed, and not yet removed
    [kept] = (_state(data_root) / "staging").iterdir()
    assert (kept / "journal.json").is_file()
    remove_stale_staging("set.tar", _state(data_root) / "staging")  # what the next extraction does first
    assert _tree(data_root) == set()
    assert not (_state(data_root) / "staging").exists()
    assert len(_extract(archive, data_root)) == 20
