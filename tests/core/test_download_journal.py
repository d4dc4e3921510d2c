"""Tests of the record journals: group-committed appends, union reads, compaction and migration."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from emloop_ds.core.download.fetch import fetch_dataset
from emloop_ds.core.download.state import StateStore
from tests.http_server import LoopbackServer


def test_fifty_runs_that_each_add_a_file_keep_the_journals_bounded(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    urls: list[str] = []
    for n in range(50):
        urls.append(http_server.add(f"/f{n:02d}.bin", bytes([n]) * 100))
        results = fetch_dataset(tmp_path, urls, jobs=4)
        assert [result.status for result in results][-1] == "downloaded"
        assert len(os.listdir(tmp_path / ".emloop-ds" / "journal")) <= 1  # earlier ones folded in
    assert len(http_server.requests()) == 50
    assert len(StateStore(tmp_path).recorded_filenames()) == 50
    snapshot = json.loads((tmp_path / ".emloop-ds" / "records.json").read_bytes())
    assert len(snapshot["records"]) == 49  # all but the last run's, which is folded in by the next run


def test_per_file_records_of_the_old_form_are_migrated_once(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    data = b"old record" * 100
    url = http_server.add("/old.bin", data)
    (tmp_path / "old.bin").write_bytes(data)
    status = (tmp_path / "old.bin").stat()
    record = {
        "version": 2,
        "url": url,
        "size_bytes": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "checksum": {"algorithm": "sha256", "digest": hashlib.sha256(data).hexdigest()},
        "extracted": False,
        "extracted_files": [],
    }
    files = tmp_path / ".emloop-ds" / "files"
    files.mkdir(parents=True)
    (files / "old.bin.json").write_text(json.dumps(record))
    [result] = fetch_dataset(tmp_path, [url])
    assert result.status == "already complete"
    assert http_server.requests() == []
    assert os.listdir(files) == []  # migrated into the snapshot
    [again] = fetch_dataset(tmp_path, [url])
    assert again.status == "already complete"
    assert http_server.requests() == []


def test_a_journal_line_cut_by_a_crash_is_ignored_and_its_file_fetched_again(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    urls = [http_server.add(f"/f{n}.bin", bytes([n]) * 100) for n in range(3)]
    fetch_dataset(tmp_path, urls)

    snapshot = tmp_path / ".emloop-ds" / "journal"
    [path] = list(snapshot.iterdir())
    lines = path.read_bytes().split(b"\n")
    cut = next(line for line in lines if b'"f2.bin"' in line)
    path.write_bytes(b"\n".join(line for line in lines if line != cut) + cut[: len(cut) // 2])
    results = fetch_dataset(tmp_path, urls)
    assert [result.status for result in results] == ["already complete", "already complete", "downloaded"]
    assert len(http_server.requests("/f2.bin")) == 2


def test_a_missing_file_is_judged_without_reading_the_journals(
    http_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch_dataset(tmp_path, [http_server.add("/a.bin", b"a" * 100)])
    store = StateStore(tmp_path)
    assert store.find("a.bin", None) is not None  # recorded, and in place
    (tmp_path / "a.bin").unlink()

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a missing file's record was looked up")

    monkeypatch.setattr(store.journal, "get", refused)
    assert store.find("a.bin", None) is None
    assert store.find("never.bin", None) is None
