"""Tests that run ``emloop dataset download`` as processes: killed midway, and two at once."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from emloop_ds.core.download.checksum import CHUNK_BYTES
from emloop_ds.core.download.state import StateStore
from tests.archives import tar_gz
from tests.http_server import Fault, LoopbackServer

EMLOOP = str(Path(sys.executable).with_name("emloop"))
DEADLINE_S = 20.0


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after a safety deadline."""
    pause = threading.Event()
    for _ in range(int(DEADLINE_S / 0.01)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _config(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "dataset:\n  class: emloop_ds.DownloadableDataset\n"
        f"  data_root: {tmp_path / 'data'}\n  download_urls:\n{entries}",
        encoding="utf-8",
    )
    return path


def _part_size(folder: Path) -> int:
    parts = list(folder.glob("*.part")) if folder.is_dir() else []
    return parts[0].stat().st_size if parts else 0


def test_killed_download_resumes_with_a_range_request(http_server: LoopbackServer, tmp_path: Path) -> None:
    data = os.urandom(6 * CHUNK_BYTES)
    kept = 3 * CHUNK_BYTES
    url = http_server.add("/big.bin", data, Fault(stall_after=kept + 1000))
    config = _config(tmp_path, f"    - url: {url}\n      sha256: {hashlib.sha256(data).hexdigest()}\n")
    process = subprocess.Popen([EMLOOP, "dataset", "download", str(config)], stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: _part_size(tmp_path / "data") >= kept, "the part file to hold 3 chunks")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(DEADLINE_S)
    assert not (tmp_path / "data" / "big.bin").exists()  # never a partial file at the final path
    assert _part_size(tmp_path / "data") == kept

    rerun = subprocess.run([EMLOOP, "dataset", "download", str(config)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stdout
    assert (tmp_path / "data" / "big.bin").read_bytes() == data
    assert [request.range for request in http_server.requests()] == [None, f"bytes={kept}-"]
    assert list((tmp_path / "data").glob("*.part")) == []


class _StreamWatcher:
    """Collect a process's stream on a thread, so a test can wait for a phrase in it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.text = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._collect, args=(stream,))
        self._thread.start()

    def _collect(self, stream: IO[bytes]) -> None:
        while chunk := os.read(stream.fileno(), 4096):
            with self._lock:
                self.text += chunk.decode(errors="replace")

    def contains(self, phrase: str) -> bool:
        with self._lock:
            return phrase in self.text

    def join(self) -> str:
        self._thread.join(DEADLINE_S)
        return self.text


def test_two_processes_downloading_at_once_both_succeed(http_server: LoopbackServer, tmp_path: Path) -> None:
    content = os.urandom(2 * CHUNK_BYTES)
    archive_url = http_server.add("/set.tar.gz", tar_gz({"set/a.bin": content}), Fault(stall_after=1000))
    plain_url = http_server.add("/labels.bin", b"labels")
    config = str(_config(tmp_path, f"    - {archive_url}\n    - {plain_url}\n"))
    command = [EMLOOP, "dataset", "download", config]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = None
    try:
        _wait_until(
            lambda: bool(http_server.requests("/set.tar.gz")), "the first process to ask for the archive"
        )
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert second.stderr is not None
        watcher = _StreamWatcher(second.stderr)
        _wait_until(
            lambda: watcher.contains("set.tar.gz: waiting for another process"), "the second process to wait"
        )
        http_server.release.set()  # the first process may now finish the archive
        first_out, first_err = first.communicate(timeout=DEADLINE_S)
        assert second.stdout is not None
        second_out = second.stdout.read()  # its stderr belongs to the watcher
        second.wait(DEADLINE_S)
        watcher.join()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(DEADLINE_S)
        for stream in (first.stdout, first.stderr, *((second.stdout, second.stderr) if second else ())):
            if stream is not None:
                stream.close()
    assert (first.returncode, second.returncode) == (0, 0), first_err
    assert b"downloaded" in first_out
    assert b"2 files, 1.0 MiB: 2 already complete" in second_out
    assert (tmp_path / "data" / "set" / "a.bin").read_bytes() == content
    assert len(http_server.requests("/set.tar.gz")) == 1
    assert len(http_server.requests("/labels.bin")) == 1


def test_runs_killed_at_random_points_of_two_thousand_files_lose_and_refetch_nothing_recorded(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    files = {f"/f{n:04d}.bin": n.to_bytes(2, "big") * 2048 for n in range(2000)}
    entries = "".join(f"    - {http_server.add(path, data)}\n" for path, data in files.items())
    config = _config(tmp_path, entries)
    data_root = tmp_path / "data"
    recorded: dict[str, int] = {}  # a recorded file -> its requests when it was first seen recorded
    for kill_after in sorted(random.Random(17).sample(range(50, 1900), 3)):
        process = subprocess.Popen(
            [EMLOOP, "dataset", "download", "--jobs", "8", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until(lambda n=kill_after: len(http_server.requests()) >= n, f"{kill_after} requests")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(DEADLINE_S)
        store = StateStore(data_root)
        for name in store.recorded_filenames():
            record = store.find(name, None)
            assert record is not None  # every recorded file is complete as recorded
            assert (data_root / name).read_bytes() == files[f"/{name}"]
            recorded.setdefault(name, len(http_server.requests(f"/{name}")))
    subprocess.run(
        [EMLOOP, "dataset", "download", "--jobs", "8", str(config)], check=True, capture_output=True
    )
    for path, data in files.items():
        assert (data_root / path[1:]).read_bytes() == data
        if path[1:] in recorded:
            assert len(http_server.requests(path)) == recorded[path[1:]], path  # never fetched again
    assert recorded  # the kills came after some files were recorded


def test_two_processes_fetching_one_set_of_files_fetch_each_once_and_keep_whole_journals(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    files = {f"/f{n:03d}.bin": n.to_bytes(2, "big") * 512 for n in range(400)}
    config = _config(tmp_path, "".join(f"    - {http_server.add(p, d)}\n" for p, d in files.items()))
    command = [EMLOOP, "dataset", "download", "--jobs", "4", str(config)]
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in "ab"]
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    for path, data in files.items():
        assert (tmp_path / "data" / path[1:]).read_bytes() == data
        assert len(http_server.requests(path)) == 1, path
    state = tmp_path / "data" / ".emloop-ds"
    lines = [line for journal in (state / "journal").iterdir() for line in journal.read_bytes().splitlines()]
    names = [json.loads(line)["name"] for line in lines]  # every line whole, never two interleaved
    if (state / "records.json").exists():  # the second process started after the first had ended
        names += json.loads((state / "records.json").read_bytes())["records"]
    assert sorted(names) == sorted(p[1:] for p in files)


def test_ctrl_c_puts_in_place_what_was_downloaded_and_exits_130(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    # One job is stalled on a big file while the other downloads the small ones; Ctrl-C comes once every
    # small file was asked for, while some may still wait for their group commit.
    big = os.urandom(2 * CHUNK_BYTES)
    small = {f"/s{n:02d}.bin": bytes([n]) * 3000 for n in range(40)}
    entries = f"    - {http_server.add('/big.bin', big, Fault(stall_after=1000))}\n"
    entries += "".join(f"    - {http_server.add(path, data)}\n" for path, data in small.items())
    config = _config(tmp_path, entries)
    process = subprocess.Popen(
        [EMLOOP, "dataset", "download", "--jobs", "2", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until(lambda: len(http_server.requests()) == 41, "every file to be asked for")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=DEADLINE_S)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr
    assert b"Traceback" not in stderr
    data_root = tmp_path / "data"
    store = StateStore(data_root)
    recorded = store.recorded_filenames()
    assert len(recorded) >= 39  # the committer put in place what had arrived
    for name in recorded:
        assert store.find(name, None) is not None
        assert (data_root / name).read_bytes() == small[f"/{name}"]
    http_server.release.set()
    rerun = subprocess.run([EMLOOP, "dataset", "download", str(config)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert (data_root / "big.bin").read_bytes() == big
    for path, data in small.items():
        assert (data_root / path[1:]).read_bytes() == data
        assert len(http_server.requests(path)) == (1 if path[1:] in recorded else 2), path
