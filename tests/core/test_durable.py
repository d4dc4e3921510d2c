"""Test durable.py: group flushes that never return before covering the caller, and early writeback."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from pathlib import Path

import pytest

from emloop_ds.core.download import durable


@pytest.mark.skipif(sys.platform == "win32", reason="Windows cannot flush a folder")
def test_threads_renaming_at_once_share_folder_flushes_and_each_waits_for_one_begun_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = durable._fsync_path
    flushes: list[int] = []  # renames finished before each flush began
    finished = 0
    count_lock = threading.Lock()

    def counting_fsync(path: str) -> None:
        with count_lock:
            before = finished
        real(path)
        with count_lock:
            flushes.append(before)

    monkeypatch.setattr(durable, "_fsync_path", counting_fsync)
    monkeypatch.setattr(durable, "_FOLDER_FLUSHERS", {})
    threads = 16
    start = threading.Barrier(threads)
    covered: list[bool] = []

    def rename_and_flush(number: int) -> None:
        nonlocal finished
        part = tmp_path / f"{number}.part"
        part.write_bytes(b"x" * 4096)
        start.wait(timeout=30)
        os.replace(part, tmp_path / f"{number}.bin")
        with count_lock:
            finished += 1
            mine = finished
        durable.fsync_folder(tmp_path)
        with count_lock:  # a flush that began once this rename had finished has ended by now
            covered.append(any(before >= mine for before in flushes))

    workers = [threading.Thread(target=rename_and_flush, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert covered == [True] * threads
    assert 1 <= len(flushes) <= threads
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{n}.bin" for n in range(threads))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_early_writeback_starts_on_linux_and_a_refused_one_raises_nothing(tmp_path: Path) -> None:
    sync_file_range = durable._find_sync_file_range()
    assert sync_file_range is not None  # in use here, not silently missing
    path = tmp_path / "data.bin"
    with open(path, "wb", buffering=0) as file:
        file.write(b"x" * 100_000)
        # The call as start_writeback makes it: the signature and flag are right when the system accepts it.
        assert sync_file_range(file.fileno(), 0, 100_000, durable._SYNC_FILE_RANGE_WRITE) == 0
        durable.start_writeback(file.fileno(), 0, 100_000)
    assert sync_file_range(-1, 0, 100_000, durable._SYNC_FILE_RANGE_WRITE) == -1
    assert ctypes.get_errno() == errno.EBADF
    durable.start_writeback(-1, 0, 100_000)  # refused: a lost hint, nothing raised
    assert path.read_bytes() == b"x" * 100_000
