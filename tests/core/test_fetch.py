"""Tests of fetching a whole dataset: idempotence, --force, extraction, parallelism, failures."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from emloop_ds import (
    ChecksumError,
    ConfigError,
    DownloadableDataset,
    DownloadCancelledError,
    DownloadError,
    NoProgress,
)
from emloop_ds.core.download import transfer
from emloop_ds.core.download.entry import parse_download_entries
from emloop_ds.core.download.fetch import FileResult, _extract, _Run, fetch_dataset, raise_failures
from emloop_ds.core.download.state import StateStore
from tests.archives import tar_gz
from tests.http_server import Fault, LoopbackServer

DATA = os.urandom(50_000)


def test_second_run_makes_no_request(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    [first] = fetch_dataset(tmp_path, [url])
    [second] = fetch_dataset(tmp_path, [url])
    assert (first.status, second.status) == ("downloaded", "already complete")
    assert len(http_server.requests()) == 1
    assert second.checksum == first.checksum
    assert second.size_bytes == len(DATA)


def test_force_downloads_again(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    fetch_dataset(tmp_path, [url])
    [result] = fetch_dataset(tmp_path, [url], force=True)
    assert result.status == "downloaded"
    assert len(http_server.requests()) == 2


def test_changed_file_is_downloaded_again(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    fetch_dataset(tmp_path, [url])
    (tmp_path / "data.bin").write_bytes(b"edited by hand")
    [result] = fetch_dataset(tmp_path, [url])
    assert result.status == "downloaded"
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_file_in_place_with_the_configured_checksum_is_adopted(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.bin", DATA)
    (tmp_path / "data.bin").write_bytes(DATA)
    [result] = fetch_dataset(tmp_path, [{"url": url, "sha256": hashlib.sha256(DATA).hexdigest()}])
    assert result.status == "already complete"
    assert http_server.requests() == []


def test_archive_is_extracted_once(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/set.tar.gz", tar_gz({"set/a.txt": b"alpha", "set/b.txt": b"beta"}))
    [first] = fetch_dataset(tmp_path, [url])
    assert first.status == "downloaded"
    assert (tmp_path / "set" / "b.txt").read_bytes() == b"beta"
    (tmp_path / "set" / "a.txt").write_bytes(b"ALPHA")  # same size: not looked at without --check
    [second] = fetch_dataset(tmp_path, [url])
    assert second.status == "already complete"
    assert (tmp_path / "set" / "a.txt").read_bytes() == b"ALPHA"
    assert len(http_server.requests()) == 1


def test_deleted_extracted_file_is_restored_from_the_kept_archive(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    url = http_server.add("/set.tar.gz", tar_gz({"set/a.txt": b"alpha", "set/b.txt": b"beta"}))
    fetch_dataset(tmp_path, [url])
    (tmp_path / "set" / "a.txt").unlink()
    [result] = fetch_dataset(tmp_path, [url])
    assert result.status == "restored"
    assert (tmp_path / "set" / "a.txt").read_bytes() == b"alpha"
    assert len(http_server.requests()) == 1  # from the archive kept in data_root, without a request


def test_interrupted_extraction_is_redone_without_a_request(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    url = http_server.add("/set.tar.gz", tar_gz({"set/a.txt": b"alpha"}))
    fetch_dataset(tmp_path, [url])
    store = StateStore(tmp_path)
    record = store.read("set.tar.gz")
    assert record is not None
    store.save("set.tar.gz", url, record.checksum, extracted=False)  # as if killed before extraction
    store.journal.close()
    [result] = fetch_dataset(tmp_path, [url])
    assert result.status == "extracted"
    assert len(http_server.requests()) == 1


def test_unsafe_archive_fails_its_file(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/bad.tar.gz", tar_gz({"../evil.txt": b"x"}))
    [result] = fetch_dataset(tmp_path / "root", [url])
    assert result.status == "failed"
    assert "member '../evil.txt' has a '..' component" in str(result.error)
    assert not (tmp_path / "evil.txt").exists()


def test_a_failure_does_not_stop_the_other_files(http_server: LoopbackServer, tmp_path: Path) -> None:
    good = http_server.add("/good.bin", DATA)
    bad = http_server.add("/bad.bin", DATA, Fault(status=404))
    results = fetch_dataset(tmp_path, [bad, good], jobs=1)
    assert [result.status for result in results] == ["failed", "downloaded"]
    assert isinstance(results[0].error, DownloadError)
    assert (tmp_path / "good.bin").read_bytes() == DATA


def test_jobs_download_files_concurrently(http_server: LoopbackServer, tmp_path: Path) -> None:
    barrier = threading.Barrier(3)  # each request waits until all three are in flight
    urls = [http_server.add(f"/{n}.bin", DATA, Fault(barrier=barrier)) for n in range(3)]
    results = fetch_dataset(tmp_path, urls, jobs=3)
    assert [result.status for result in results] == ["downloaded"] * 3
    assert not barrier.broken


def test_jobs_bound_the_transfers_in_flight(http_server: LoopbackServer, tmp_path: Path) -> None:
    barrier = threading.Barrier(3)  # the first three requests are in flight together
    faults = [Fault(barrier=barrier)] * 3 + [Fault(latency_s=0.02)] * 9
    urls = [http_server.add(f"/{n}.bin", DATA, fault) for n, fault in enumerate(faults)]
    results = fetch_dataset(tmp_path, urls, jobs=3)
    assert [result.status for result in results] == ["downloaded"] * 12
    assert not barrier.broken
    assert http_server.max_in_flight == 3  # the run's threads are twice as many (NOTE [transfer slots])


def test_next_transfer_starts_while_a_file_is_recorded(
    http_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With one job, recording the first file downloaded waits until the other file's request has reached the
    # server: that happens only if the transfer slot is given back before a file is flushed and recorded;
    # otherwise the wait times out and the run fails.
    urls = [http_server.add("/first.bin", DATA), http_server.add("/second.bin", DATA)]
    write_records = StateStore.write_records
    recorded: list[int] = []

    def record_after_both_requests(store: StateStore, *args: Any, **kwargs: Any) -> Any:
        assert http_server.wait_for_requests(2), "the next transfer did not start while a file was recorded"
        recorded.append(1)
        return write_records(store, *args, **kwargs)

    monkeypatch.setattr(StateStore, "write_records", record_after_both_requests)
    results = fetch_dataset(tmp_path, urls, jobs=1)
    assert [result.status for result in results] == ["downloaded", "downloaded"]
    assert recorded  # the files were recorded by the patched function
    assert http_server.max_in_flight == 1


def test_part_files_are_opened_only_with_a_transfer_slot(
    http_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run has two threads for its one job, and every answer is slow: a thread that opened a part file
    # (and hashed a part to resume) before waiting for the slot would do so during the other's transfer.
    urls = [http_server.add(f"/{n}.bin", DATA, Fault(latency_s=0.2)) for n in range(3)]
    in_transfer = [0]
    seen_at_open: list[int] = []
    lock = threading.Lock()
    fetch_with_retries = transfer._fetch_with_retries

    def counted_transfer(*args: Any) -> None:
        with lock:
            in_transfer[0] += 1
        try:
            fetch_with_retries(*args)
        finally:
            with lock:
                in_transfer[0] -= 1

    class CountedPartFile(transfer.PartFile):
        def __init__(self, *args: Any) -> None:
            with lock:
                seen_at_open.append(in_transfer[0])
            super().__init__(*args)

    monkeypatch.setattr(transfer, "_fetch_with_retries", counted_transfer)
    monkeypatch.setattr(transfer, "PartFile", CountedPartFile)
    results = fetch_dataset(tmp_path, urls, jobs=1)
    assert [result.status for result in results] == ["downloaded"] * 3
    assert seen_at_open == [0, 0, 0]  # no other transfer was under way when a part file was opened


def test_a_cancelled_run_extracts_nothing_more(tmp_path: Path) -> None:
    (tmp_path / "set.tar.gz").write_bytes(tar_gz({"set/a.txt": b"alpha"}))
    [entry] = parse_download_entries(["http://127.0.0.1:9/set.tar.gz"])
    run = _Run(StateStore(tmp_path), 1, 30.0, False, NoProgress(), None)
    run.cancel.set()  # as Ctrl-C does while the file waits for a slot to extract
    with pytest.raises(DownloadCancelledError, match="interrupted before extracting set.tar.gz"):
        _extract(entry, run)
    assert not (tmp_path / "set").exists()


def test_invalid_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="jobs must be at least 1"):
        fetch_dataset(tmp_path, [], jobs=0)


def test_data_root_that_cannot_be_made_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DownloadError, match="cannot create data_root"):
        fetch_dataset(tmp_path / "file" / "root", [])


def _failed(message: str, error_class: type[DownloadError] = DownloadError) -> FileResult:
    return FileResult("f", "u", "failed", 0.0, error=error_class(message))


def test_raise_failures_raises_a_single_error_itself() -> None:
    with pytest.raises(ChecksumError, match="mismatch"):
        raise_failures([_failed("mismatch", ChecksumError), FileResult("g", "u", "downloaded", 0.0)])


def test_raise_failures_lists_several_errors() -> None:
    with pytest.raises(DownloadError, match="2 of 2 files failed: one; two"):
        raise_failures([_failed("one"), _failed("two")])


class _Downloadable(DownloadableDataset):
    pass


def test_dataset_download_fetches_its_urls(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    dataset = _Downloadable(f"data_root: {tmp_path}\ndownload_urls: ['{url}']\n")
    dataset.download(progress=NoProgress())
    dataset.download(progress=NoProgress())
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert len(http_server.requests()) == 1


def test_dataset_download_raises_the_failure(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA, Fault(status=404))
    dataset = _Downloadable(f"data_root: {tmp_path}\ndownload_urls: ['{url}']\n")
    with pytest.raises(DownloadError, match="HTTP 404"):
        dataset.download(progress=NoProgress())


def test_two_thousand_files_then_a_no_op_rerun(http_server: LoopbackServer, tmp_path: Path) -> None:
    files = {f"/f{n:04d}.bin": n.to_bytes(2, "big") * 2048 for n in range(2000)}
    urls = [http_server.add(path, data) for path, data in files.items()]
    first = fetch_dataset(tmp_path, urls, jobs=8)
    assert {result.status for result in first} == {"downloaded"}
    assert len(http_server.requests()) == 2000
    assert (tmp_path / "f1999.bin").read_bytes() == files["/f1999.bin"]
    assert len(StateStore(tmp_path).recorded_filenames()) == 2000
    assert len(list((tmp_path / ".emloop-ds" / "journal").iterdir())) == 1  # one journal for the run

    second = fetch_dataset(tmp_path, urls, jobs=8)
    assert {result.status for result in second} == {"already complete"}
    assert len(http_server.requests()) == 2000  # no request at all


def test_first_mirror_failing_falls_over_to_the_next(http_server: LoopbackServer, tmp_path: Path) -> None:
    dead = http_server.add("/dead/data.bin", DATA, Fault(status=404))
    good = http_server.add("/good/data.bin", DATA)
    sha256 = hashlib.sha256(DATA).hexdigest()
    [result] = fetch_dataset(tmp_path, [{"url": [dead, good], "sha256": sha256}])
    assert result.status == "downloaded"
    assert result.url == good
    assert len(result.warnings) == 1
    assert f"mirror {dead} failed" in result.warnings[0]
    assert "HTTP 404" in result.warnings[0]
    # the file is known by its name: reordering the mirrors downloads nothing again
    [again] = fetch_dataset(tmp_path, [{"url": [good, dead], "sha256": sha256}])
    assert again.status == "already complete"
    assert len(http_server.requests()) == 2


def test_mirror_with_wrong_bytes_falls_over_to_the_next(http_server: LoopbackServer, tmp_path: Path) -> None:
    wrong = http_server.add("/wrong/data.bin", b"another version")
    good = http_server.add("/good/data.bin", DATA)
    entry = {"url": [wrong, good], "sha256": hashlib.sha256(DATA).hexdigest()}
    [result] = fetch_dataset(tmp_path, [entry])
    assert result.status == "downloaded"
    assert "checksum mismatch" in result.warnings[0]
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_all_mirrors_failing_names_each(http_server: LoopbackServer, tmp_path: Path) -> None:
    first = http_server.add("/a/data.bin", DATA, Fault(status=404))
    second = http_server.add("/b/data.bin", DATA, Fault(status=403))
    [result] = fetch_dataset(tmp_path, [{"url": [first, second]}])
    assert result.status == "failed"
    message = str(result.error)
    assert "cannot download data.bin from any of its 2 mirrors" in message
    assert f"{first}: HTTP 404" in message
    assert f"{second}: HTTP 403" in message


def test_unresolvable_mirror_is_left_at_once(http_server: LoopbackServer, tmp_path: Path) -> None:
    good = http_server.add("/data.bin", DATA)
    [result] = fetch_dataset(tmp_path, [{"url": ["https://mirror.invalid/data.bin", good]}])
    assert result.status == "downloaded"
    assert "cannot resolve host mirror.invalid" in result.warnings[0]


def test_first_version_manifest_is_migrated_once(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    (tmp_path / "data.bin").write_bytes(DATA)
    status = (tmp_path / "data.bin").stat()
    digest = hashlib.sha256(DATA).hexdigest()
    record = {
        "url": url,
        "size_bytes": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "checksum": {"algorithm": "sha256", "digest": digest},
        "extracted": False,
    }
    state = tmp_path / ".emloop-ds"
    state.mkdir()
    (state / "manifest.json").write_text(json.dumps({"version": 1, "files": {"data.bin": record}}))
    [result] = fetch_dataset(tmp_path, [url])
    assert result.status == "already complete"
    assert http_server.requests() == []
    assert not (state / "manifest.json").exists()
    migrated = StateStore(tmp_path).read("data.bin")
    assert migrated is not None
    assert migrated.checksum.digest == digest


def test_failed_extraction_leaves_no_staging_folder(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/bad.tar.gz", b"not an archive")
    [result] = fetch_dataset(tmp_path, [url])
    assert result.status == "failed"
    assert not (tmp_path / ".emloop-ds" / "staging").exists()


def test_url_root_and_download_filenames_make_the_urls(http_server: LoopbackServer, tmp_path: Path) -> None:
    http_server.add("/sets/a.bin", DATA)
    http_server.add("/sets/b%20c.bin", DATA[:10])
    config = (
        f"data_root: {tmp_path}\n"
        f"url_root: ['{http_server.base_url}/dead/', '{http_server.base_url}/sets']\n"
        f"download_filenames: [a.bin, {{filename: b c.bin, sha256: {hashlib.sha256(DATA[:10]).hexdigest()}}}]"
        "\n"
    )
    dataset = _Downloadable(config)
    assert list(dataset.download_urls)[1]["url"] == [
        f"{http_server.base_url}/dead/b%20c.bin",
        f"{http_server.base_url}/sets/b%20c.bin",
    ]
    dataset.download(progress=NoProgress())
    assert (tmp_path / "a.bin").read_bytes() == DATA
    assert (tmp_path / "b_c.bin").read_bytes() == DATA[:10]


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        ("url_root: http://e.org/\ndownload_urls: [http://e.org/a]\ndownload_filenames: [a]\n", "got both"),
        ("download_filenames: [a]\n", "got download_filenames but no url_root"),
        ("url_root: http://e.org/\n", "download_filenames is not a list"),
        ("url_root: [3]\ndownload_filenames: [a]\n", "is not a URL or a list of URLs"),
        ("url_root: http://e.org/\ndownload_filenames: [{url: x}]\n", "download_filenames[0] is"),
    ],
)
def test_bad_url_root_forms_are_config_errors(config: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _Downloadable(config)
    assert phrase in str(caught.value)
