"""Test the group flushes of durable.py: shared flushes that never return before covering the caller."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from emloop_ds.core.download import durable


@pytest.mark.skipif(durable._syncfs is None, reason="syncfs is Linux's")
def test_threads_finishing_at_once_share_syncfs_and_each_waits_for_one_begun_after_it(tmp_path, monkeypatch):
    real = durable._syncfs
    assert real is not None
    flushes: list[tuple[int, int]] = []  # (writes finished before the flush began, after it ended)
    finished = 0
    count_lock = threading.Lock()

    def counting_syncfs(descriptor: int) -> int:
        with count_lock:
            before = finished
        result = real(descriptor)
        with count_lock:
            flushes.append((before, finished))
        return result

    monkeypatch.setattr(durable, "_syncfs", counting_syncfs)
    monkeypatch.setattr(durable, "_DATA_FLUSHERS", {})
    threads = 16
    start = threading.Barrier(threads)
    covered: list[bool] = []

    def write_and_flush(number: int) -> None:
        nonlocal finished
        descriptor = os.open(tmp_path / f"{number}.part", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, b"x" * 4096)
            start.wait(timeout=30)
            with count_lock:
                finished += 1
                mine = finished
            flushes_before = len(flushes)
            durable.flush_file_data(descriptor, 4096)
            # a flush that began once this write had finished has ended by now
            with count_lock:
                covered.append(
                    any(before >= mine for before, _ in flushes[flushes_before:])
                    or any(before >= mine for before, _ in flushes)
                )
        finally:
            os.close(descriptor)

    workers = [threading.Thread(target=write_and_flush, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert covered == [True] * threads
    assert 1 <= len(flushes) < threads  # shared: fewer flushes than files


def test_a_large_file_is_flushed_alone(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(durable, "_syncfs", lambda descriptor: calls.append(descriptor) or 0)
    descriptor = os.open(tmp_path / "big.part", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, b"x")
        durable.flush_file_data(descriptor, durable.GROUP_DATA_FLUSH_MAX_BYTES + 1)
        assert calls == []  # its own fsync
        durable.flush_file_data(descriptor, 1)
        assert calls == [descriptor]
    finally:
        os.close(descriptor)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs is Linux's")
def test_a_failed_syncfs_is_an_os_error():
    with pytest.raises(OSError, match="Bad file descriptor"):
        durable.syncfs(10_000)  # not an open descriptor: EBADF
