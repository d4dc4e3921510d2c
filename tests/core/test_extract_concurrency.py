"""Tests of extractions that share folders, run at once from threads and processes, or are killed midway."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from emloop_ds import ExtractionError
from emloop_ds.core.download.extract import extract_archive, find_damaged, remove_stale_staging
from emloop_ds.core.download.extracted_record import read_record
from tests.archives import tar_gz

_SAFETY_TIMEOUT_S = 60


def _members(number: int, files: int = 12) -> dict[str, bytes]:
    """Members of one part of a dataset: a licence every part ships, and its own files in shared folders."""
    members = {"mnist/LICENSE": b"the same licence in every part"}
    for split in ("train", "test"):
        for index in range(files):
            members[f"mnist/{split}/{number:02}-{index:03}.bin"] = f"part {number} {split} {index}".encode()
    return members


def _write_parts(folder: Path, count: int = 8) -> list[Path]:
    paths = []
    for number in range(count):
        path = folder / f"part{number}.tar.gz"
        path.write_bytes(tar_gz(_members(number)))
        paths.append(path)
    return paths


def _extract_at_once(archives: Sequence[Path], data_root: Path) -> list[BaseException | None]:
    """Extract every archive from a thread of its own, all released together; return each one's error."""
    barrier = threading.Barrier(len(archives))
    errors: list[BaseException | None] = [None] * len(archives)

    def extract(index: int) -> None:
        barrier.wait(timeout=_SAFETY_TIMEOUT_S)
        try:
            extract_archive(archives[index], data_root, max_bytes=10**9)
        except BaseException as exc:  # checked by the test
            errors[index] = exc

    threads = [threading.Thread(target=extract, args=(index,)) for index in range(len(archives))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=_SAFETY_TIMEOUT_S)
        assert not thread.is_alive()
    return errors


def _expected_tree(numbers: Sequence[int]) -> dict[str, bytes]:
    tree: dict[str, bytes] = {}
    for number in numbers:
        tree.update(_members(number))
    return tree


def _files(data_root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(data_root).as_posix(): path.read_bytes()
        for path in data_root.rglob("*")
        if path.is_file() and ".emloop-ds" not in path.parts
    }


def _assert_complete(data_root: Path, archives: Sequence[Path]) -> None:
    for archive in archives:
        record = read_record(data_root / ".emloop-ds", archive.name)
        assert record is not None, archive.name
        assert find_damaged(data_root, list(record.files.values())) == []
    assert not (data_root / ".emloop-ds" / "staging").exists()


def test_eight_archives_sharing_a_folder_extract_at_once_repeatedly(tmp_path: Path) -> None:
    archives = _write_parts(tmp_path)
    for attempt in range(12):
        data_root = tmp_path / f"data{attempt}"
        assert _extract_at_once(archives, data_root) == [None] * 8
        assert _files(data_root) == _expected_tree(range(8))
        _assert_complete(data_root, archives)


def test_failing_archives_among_parallel_ones_leave_only_the_others(tmp_path: Path) -> None:
    archives = _write_parts(tmp_path)
    clash = tmp_path / "clash.tar.gz"
    clash.write_bytes(tar_gz({**_members(8), "mnist/notes.txt": b"the archive's notes"}))
    broken = tmp_path / "broken.tar.gz"
    data = tar_gz(_members(9, files=60))
    broken.write_bytes(data[: len(data) - 300])
    for attempt in range(3):
        data_root = tmp_path / f"data{attempt}"
        (data_root / "mnist").mkdir(parents=True)
        (data_root / "mnist" / "notes.txt").write_bytes(b"the user's notes")
        errors = _extract_at_once([*archives[:3], clash, *archives[3:], broken], data_root)
        assert [type(error) for error in errors] == [type(None)] * 3 + [ExtractionError] + [
            type(None)
        ] * 5 + [ExtractionError]
        assert "its member 'mnist/notes.txt' would overwrite" in str(errors[3])
        assert "the archive is broken or unreadable" in str(errors[9])
        assert _files(data_root) == {**_expected_tree(range(8)), "mnist/notes.txt": b"the user's notes"}
        _assert_complete(data_root, archives)


def test_archives_racing_for_one_path_with_different_content_let_exactly_one_win(tmp_path: Path) -> None:
    archives = []
    for number in range(8):
        archives.append(tmp_path / f"part{number}.tar.gz")
        archives[-1].write_bytes(tar_gz({**_members(number), "mnist/README": b"version %d" % number}))
    for attempt in range(6):
        data_root = tmp_path / f"data{attempt}"
        errors = _extract_at_once(archives, data_root)
        winners = [number for number, error in enumerate(errors) if error is None]
        assert len(winners) == 1
        assert all("its member 'mnist/README' would overwrite" in str(error) for error in errors if error)
        expected = {**_members(winners[0]), "mnist/README": b"version %d" % winners[0]}
        assert _files(data_root) == expected
        _assert_complete(data_root, [archives[winners[0]]])


_EXTRACT_MANY = """
import sys, threading
from pathlib import Path
from emloop_ds.core.download.extract import extract_archive

root, archives = Path(sys.argv[1]), [Path(name) for name in sys.argv[2:]]
print("ready", flush=True)
sys.stdin.readline()
errors = []

def extract(archive):
    try:
        extract_archive(archive, root, max_bytes=10**9)
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=extract, args=(archive,)) for archive in archives]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors, flush=True)
sys.exit(1 if errors else 0)
"""


def _start(script: str, *arguments: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", script, *map(str, arguments)]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], _SAFETY_TIMEOUT_S)
    assert ready, "the child process did not answer"
    return process.stdout.readline().strip()


def _tell(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def test_two_processes_extract_archives_sharing_a_folder_at_once(tmp_path: Path) -> None:
    archives = _write_parts(tmp_path)
    for attempt in range(2):
        data_root = tmp_path / f"data{attempt}"
        processes = [
            _start(_EXTRACT_MANY, data_root, *archives[0::2]),
            _start(_EXTRACT_MANY, data_root, *archives[1::2]),
        ]
        try:
            assert [_read_line(process) for process in processes] == ["ready", "ready"]
            for process in processes:
                _tell(process, "go")
            assert [process.wait(timeout=_SAFETY_TIMEOUT_S) for process in processes] == [0, 0]
        finally:
            for process in processes:
                process.kill()
                process.communicate()
        assert _files(data_root) == _expected_tree(range(8))
        _assert_complete(data_root, archives)


_KILLED_MIDWAY = """
import os, shutil, sys
from pathlib import Path
from emloop_ds.core.download.extract import extract_archive

archive, root, pause_at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
calls = 0

def pause():
    print("paused", flush=True)
    sys.stdin.readline()  # the test kills this process here

def pausing(real):
    def call(*args, **kwargs):
        global calls
        result = real(*args, **kwargs)
        calls += 1
        if calls == int(pause_at.partition(":")[2]):
            pause()
        return result
    return call

if pause_at.startswith("link:"):  # after this many files were placed (or backed up)
    os.link = pausing(os.link)
else:  # "rmtree:1": after the record was written, before the staging folder is removed
    shutil.rmtree = lambda *args, **kwargs: pause()
extract_archive(archive, root, max_bytes=10**9)
print("finished", flush=True)
"""


def _kill_midway(archive: Path, data_root: Path, pause_at: str) -> None:
    """Run an extraction in a child process and kill it with SIGKILL at ``pause_at``."""
    process = _start(_KILLED_MIDWAY, archive, data_root, pause_at)
    try:
        assert _read_line(process) == "paused"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=_SAFETY_TIMEOUT_S) == -signal.SIGKILL
    finally:
        process.kill()
        process.communicate()


@pytest.fixture
def killed_part(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """An extraction of a 100-file part into a folder shared with a user's file, killed after 40 files."""
    members = _members(0, files=50)
    archive = tmp_path / "part0.tar.gz"
    archive.write_bytes(tar_gz(members))
    data_root = tmp_path / "data"
    (data_root / "mnist" / "train").mkdir(parents=True)
    (data_root / "mnist" / "train" / "mine.txt").write_text("the user's")
    _kill_midway(archive, data_root, "link:40")
    placed = set(_files(data_root)) - {"mnist/train/mine.txt"}
    assert 0 < len(placed) < len(members)  # killed in the middle of the merge
    assert read_record(data_root / ".emloop-ds", archive.name) is None
    return archive, data_root, members


def test_an_extraction_killed_midway_is_extracted_again(
    killed_part: tuple[Path, Path, dict[str, bytes]],
) -> None:
    archive, data_root, members = killed_part
    files = extract_archive(archive, data_root, max_bytes=10**9)
    assert {file.path for file in files} == set(members)
    assert _files(data_root) == {**members, "mnist/train/mine.txt": b"the user's"}
    _assert_complete(data_root, [archive])


def test_an_extraction_killed_midway_is_rolled_back_before_anything_else(
    killed_part: tuple[Path, Path, dict[str, bytes]],
) -> None:
    archive, data_root, _ = killed_part
    remove_stale_staging(archive.name, data_root / ".emloop-ds" / "staging")
    assert _files(data_root) == {"mnist/train/mine.txt": b"the user's"}
    assert sorted(path.name for path in data_root.rglob("*") if ".emloop-ds" not in path.parts) == [
        "mine.txt",
        "mnist",
        "train",
    ]
    assert not (data_root / ".emloop-ds" / "staging").exists()


def test_a_re_extraction_killed_midway_puts_the_earlier_files_back(tmp_path: Path) -> None:
    archive = tmp_path / "part0.tar.gz"
    old = {f"mnist/{index:03}.bin": b"old %d" % index for index in range(60)}
    archive.write_bytes(tar_gz(old))
    data_root = tmp_path / "data"
    extract_archive(archive, data_root, max_bytes=10**9)
    new = {path: b"new version %d" % index for index, path in enumerate(old)}
    archive.write_bytes(tar_gz(new))
    _kill_midway(archive, data_root, "link:41")  # 40 files swapped, the 41st backed up but not replaced
    contents = _files(data_root).values()
    assert 0 < sum(content.startswith(b"new") for content in contents) < len(old)
    remove_stale_staging(archive.name, data_root / ".emloop-ds" / "staging")
    assert _files(data_root) == old
    extract_archive(archive, data_root, max_bytes=10**9)
    assert _files(data_root) == new


def test_an_extraction_killed_after_its_record_counts_as_extracted(tmp_path: Path) -> None:
    members = _members(0)
    archive = tmp_path / "part0.tar.gz"
    archive.write_bytes(tar_gz(members))
    data_root = tmp_path / "data"
    _kill_midway(archive, data_root, "rmtree:1")
    assert (data_root / ".emloop-ds" / "staging").exists()
    remove_stale_staging(archive.name, data_root / ".emloop-ds" / "staging")
    assert _files(data_root) == members
    _assert_complete(data_root, [archive])


def test_an_extraction_sweeps_what_a_killed_extraction_of_another_archive_left(
    killed_part: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    _, data_root, _ = killed_part
    other = tmp_path / "part1.tar.gz"
    other.write_bytes(tar_gz(_members(1)))
    extract_archive(other, data_root, max_bytes=10**9)
    assert _files(data_root) == {**_members(1), "mnist/train/mine.txt": b"the user's"}
    _assert_complete(data_root, [other])


def test_a_live_extraction_is_not_swept_by_another(tmp_path: Path) -> None:
    paused = tmp_path / "part0.tar.gz"
    paused.write_bytes(tar_gz(_members(0)))
    other = tmp_path / "part1.tar.gz"
    other.write_bytes(tar_gz(_members(1)))
    data_root = tmp_path / "data"
    process = _start(_KILLED_MIDWAY, paused, data_root, "link:10")
    try:
        assert _read_line(process) == "paused"  # mid-merge, holding its staging folder's lock
        placed = _files(data_root)
        extract_archive(other, data_root, max_bytes=10**9)
        assert _files(data_root) == {**placed, **_members(1)}
        _tell(process, "go on")
        assert _read_line(process) == "finished"
        assert process.wait(timeout=_SAFETY_TIMEOUT_S) == 0
    finally:
        process.kill()
        process.communicate()
    assert _files(data_root) == _expected_tree([0, 1])
    _assert_complete(data_root, [paused, other])


def test_a_shared_file_stays_when_the_extraction_that_placed_it_is_rolled_back(tmp_path: Path) -> None:
    placer = tmp_path / "placer.tar.gz"
    placer.write_bytes(tar_gz(_members(0, files=2)))  # LICENSE and 4 files of its own
    sharer = tmp_path / "sharer.tar.gz"
    sharer.write_bytes(tar_gz(_members(1)))
    data_root = tmp_path / "data"
    process = _start(_KILLED_MIDWAY, placer, data_root, "link:5")
    try:
        assert _read_line(process) == "paused"  # every file placed, LICENSE included, not yet recorded
        extract_archive(sharer, data_root, max_bytes=10**9)  # finds LICENSE there, identical
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=_SAFETY_TIMEOUT_S) == -signal.SIGKILL
    finally:
        process.kill()
        process.communicate()
    remove_stale_staging(placer.name, data_root / ".emloop-ds" / "staging")  # rolls the placer back
    assert _files(data_root) == _members(1)
    _assert_complete(data_root, [sharer])
