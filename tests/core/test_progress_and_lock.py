"""Tests of progress reporting (tqdm bars only after a delay, by a fake clock) and of the file lock."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from emloop_ds import DownloadCancelledError
from emloop_ds.core.download.lock import BUCKETS, FileLocks, hold_lock
from emloop_ds.core.download.progress import OVERALL_BAR_ABOVE, LineProgress, TqdmProgress


def test_bar_appears_only_after_the_delay() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = TqdmProgress(file=stream, delay_s=0.5, clock=lambda: now[0]).open_file("train.tar.gz")
    progress.start(None, 0)  # no Content-Length: the bar counts bytes without a total
    progress.advance(1000)
    assert stream.getvalue() == ""
    now[0] = 0.6
    progress.advance(2048)
    progress.close()
    assert "train.tar.gz" in stream.getvalue()
    assert "2.98kB" in stream.getvalue()  # 3048 bytes in KiB, counted from before the bar appeared


def test_notes_are_lines_naming_the_file() -> None:
    stream = io.StringIO()
    TqdmProgress(file=stream).open_file("a.zip").note("HTTP 503; retry 1 of 4 in 1 s")
    assert stream.getvalue() == "a.zip: HTTP 503; retry 1 of 4 in 1 s\n"


def test_lock_excludes_other_holders_and_tells_them_to_wait(tmp_path: Path) -> None:
    lock_path = tmp_path / "locks" / "a.lock"
    waited = threading.Event()
    entered = threading.Event()

    def second_holder() -> None:
        with hold_lock(lock_path, on_wait=waited.set):
            entered.set()

    with hold_lock(lock_path):
        thread = threading.Thread(target=second_holder)
        thread.start()
        assert not entered.wait(0.1)  # blocked while the first holder keeps the lock
    thread.join(10)
    assert entered.is_set()


def test_waiting_for_a_lock_can_be_cancelled(tmp_path: Path) -> None:
    lock_path = tmp_path / "a.lock"
    cancel = threading.Event()
    cancel.set()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            with hold_lock(lock_path, cancel=cancel):
                pass
        except DownloadCancelledError as exc:
            errors.append(exc)

    with hold_lock(lock_path):
        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(10)
    assert len(errors) == 1
    with pytest.raises(DownloadCancelledError), hold_lock(lock_path, cancel=cancel):
        raise DownloadCancelledError("body")


def _same_bucket_names(locks: FileLocks) -> tuple[str, str]:
    first = locks.path("f0.bin")
    other = next(f"f{i}.bin" for i in range(1, 50 * BUCKETS) if locks.path(f"f{i}.bin") == first)
    return "f0.bin", other


def test_file_locks_share_a_bucket_between_threads_and_keep_other_processes_out(tmp_path: Path) -> None:
    ours, other_process = FileLocks(tmp_path / "locks"), FileLocks(tmp_path / "locks")  # own lock files each
    name, same_bucket = _same_bucket_names(ours)
    sibling_inside, sibling_leave = threading.Event(), threading.Event()
    waited, entered = threading.Event(), threading.Event()

    def sibling() -> None:
        with ours.hold(same_bucket):
            sibling_inside.set()
            sibling_leave.wait(10)

    def other_holder() -> None:
        with other_process.hold(name, on_wait=waited.set):
            entered.set()

    threads = [threading.Thread(target=sibling), threading.Thread(target=other_holder)]
    with ours.hold(name):
        threads[0].start()
        assert sibling_inside.wait(10)  # a thread of the same process joins the bucket its process holds
        threads[1].start()
        assert waited.wait(10)  # another process waits for it
    assert not entered.wait(0.1)  # still kept out while the sibling is inside
    sibling_leave.set()
    for thread in threads:
        thread.join(10)
    assert entered.is_set()


def test_line_progress_prints_at_most_every_interval() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = LineProgress(file=stream, interval_s=5.0, clock=lambda: now[0])
    progress.start_run(4)
    file = progress.open_file("a.bin")
    file.advance(1024 * 1024)
    progress.finish_file("a.bin", "downloaded")
    assert stream.getvalue() == ""  # a run shorter than the interval prints nothing
    now[0] = 5.0
    file.advance(1024 * 1024)
    now[0] = 6.0
    progress.finish_file("b.bin", "already complete")  # within 5 s of the last line: silent
    assert stream.getvalue() == "progress: 1 of 4 files, 2.0 MiB, 409.6 KiB/s, ETA 15s\n"
    now[0] = 10.0
    file.note("HTTP 503; retry 1 of 4 in 1 s")
    progress.finish_file("c.bin", "downloaded")
    assert stream.getvalue().splitlines()[1:] == [
        "a.bin: HTTP 503; retry 1 of 4 in 1 s",
        "progress: 3 of 4 files, 2.0 MiB, 204.8 KiB/s, ETA 3s",
    ]


def test_many_files_get_one_overall_bar() -> None:
    stream = io.StringIO()
    progress = TqdmProgress(file=stream, leave=True)  # leave: the bar's last state stays in the output
    progress.start_run(OVERALL_BAR_ABOVE + 1)
    for number in range(OVERALL_BAR_ABOVE + 1):
        progress.finish_file(f"{number}.bin", "already complete")
    progress.end_run()
    assert f"{OVERALL_BAR_ABOVE + 1}/{OVERALL_BAR_ABOVE + 1}" in stream.getvalue()
    assert "files" in stream.getvalue()


def test_under_the_overall_bar_a_file_bar_lasts_only_while_its_bytes_arrive() -> None:
    now = [0.0]
    progress = TqdmProgress(file=io.StringIO(), delay_s=0.5, clock=lambda: now[0])
    open_bars = progress.tqdm_class()._instances  # tqdm's bars open in this process
    before = len(open_bars)
    progress.start_run(OVERALL_BAR_ABOVE + 1)
    file = progress.open_file("train.tar.gz")
    file.start(3000, 0)
    now[0] = 0.6
    file.advance(1000)
    assert len(open_bars) == before + 2  # the overall bar and the file's
    file.advance(2000)  # its last byte: flushing and extracting it are not in flight
    assert len(open_bars) == before + 1
    file.close()
    late = progress.open_file("late.bin")  # due at once, but complete in one read: it gets no bar
    late.start(10, 0)
    now[0] = 2.0
    late.advance(10)
    assert len(open_bars) == before + 1
    late.close()
    progress.end_run()
    assert len(open_bars) == before


def test_few_files_get_no_overall_bar() -> None:
    stream = io.StringIO()
    progress = TqdmProgress(file=stream)
    progress.start_run(OVERALL_BAR_ABOVE)
    progress.finish_file("a.bin", "already complete")
    progress.end_run()
    assert stream.getvalue() == ""
