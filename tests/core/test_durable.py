"""Test the group flushes of durable.py: shared flushes that never return before covering the caller."""

from __future__ import annotations

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
def test_early_writeback_is_a_hint_that_never_fails(tmp_path: Path) -> None:
    assert durable._find_sync_file_range() is not None  # in use here, not silently missing
    path = tmp_path / "data.bin"
    with open(path, "wb", buffering=0) as file:
        file.write(b"x" * 100_000)
        durable.start_writeback(file.fileno(), 0, 100_000)
        descriptor = file.fileno()
    durable.start_writeback(descriptor, 0, 100_000)  # closed: the system refuses; nothing is raised
    assert path.read_bytes() == b"x" * 100_000
