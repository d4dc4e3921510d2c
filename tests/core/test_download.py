"""Tests of downloading one URL against a real loopback server that injects faults."""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import threading
from pathlib import Path

import pytest

from emloop_ds import ChecksumError, DownloadCancelledError, DownloadError
from emloop_ds.core.download import part
from emloop_ds.core.download.checksum import CHUNK_BYTES, Checksum
from emloop_ds.core.download.durable import WRITEBACK_BYTES
from emloop_ds.core.download.part import PartOrigin, part_path, write_origin
from emloop_ds.core.download.progress import NoProgress
from emloop_ds.core.download.response import Validators
from emloop_ds.core.download.retry import RetryPolicy
from emloop_ds.core.download.transfer import download_file
from tests.http_server import Fault, LoopbackServer

DATA = os.urandom(300_000)
SHA256 = Checksum("sha256", hashlib.sha256(DATA).hexdigest())
BIG = os.urandom(CHUNK_BYTES + 300_000)
"""More than one chunk: a part of a file this big records its origin (validators) for resuming."""


@pytest.mark.usefixtures("sleeps")
def test_download_writes_target_and_leaves_no_part(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    outcome = download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert outcome.size_bytes == len(DATA)
    assert outcome.checksum == SHA256
    assert not outcome.resumed
    assert list(tmp_path.glob("*.part")) == []


def test_sha256_is_computed_when_no_checksum_is_given(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    assert download_file(url, tmp_path / "data.bin").checksum == SHA256


def test_md5_checksum_is_verified(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    md5 = Checksum("md5", hashlib.md5(DATA).hexdigest())
    assert download_file(url, tmp_path / "data.bin", checksum=md5).checksum == md5


def test_checksum_mismatch_keeps_no_final_file(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    expected = Checksum("sha256", "0" * 64)
    with pytest.raises(ChecksumError) as caught:
        download_file(url, tmp_path / "data.bin", checksum=expected)
    message = str(caught.value)
    assert url in message
    assert "0" * 64 in message
    assert SHA256.digest in message
    assert "was not kept" in message
    assert list(tmp_path.iterdir()) == []


def test_cut_transfer_resumes_with_range(
    http_server: LoopbackServer, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.add("/data.bin", DATA, Fault(cut_after=100_000))
    outcome = download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert [request.range for request in http_server.requests()] == [None, "bytes=100000-"]
    assert outcome.resumed
    assert sleeps == [1.0]


def test_server_errors_are_retried_with_exponential_backoff(
    http_server: LoopbackServer, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.add("/data.bin", DATA, Fault(status=503), Fault(status=500), Fault(status=502))
    download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert sleeps == [1.0, 2.0, 4.0]


def test_retry_after_is_honoured(http_server: LoopbackServer, tmp_path: Path, sleeps: list[float]) -> None:
    url = http_server.add("/data.bin", DATA, Fault(status=429, retry_after="7"))
    download_file(url, tmp_path / "data.bin")
    assert sleeps == [7.0]


def test_retry_after_beyond_the_longest_wait_fails_at_once(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.bin", DATA, Fault(status=503, retry_after="3600"))
    with pytest.raises(DownloadError, match="asks to wait 3600 s"):
        download_file(url, tmp_path / "data.bin", retry=RetryPolicy(sleep=lambda _: None))
    assert len(http_server.requests()) == 1


def test_persistent_server_error_gives_up_after_the_attempts(
    http_server: LoopbackServer, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.add("/data.bin", DATA, *[Fault(status=503)] * 5)
    with pytest.raises(DownloadError) as caught:
        download_file(url, tmp_path / "data.bin")
    assert f"cannot download {url}: HTTP 503" in str(caught.value)
    assert "after 5 attempts" in str(caught.value)
    assert len(http_server.requests()) == 5
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert not (tmp_path / "data.bin").exists()


@pytest.mark.parametrize(("status", "phrase"), [(404, "HTTP 404 Not Found"), (403, "HTTP 403 Forbidden")])
def test_client_errors_fail_at_once(
    http_server: LoopbackServer, tmp_path: Path, sleeps: list[float], status: int, phrase: str
) -> None:
    url = http_server.add("/data.bin", DATA, Fault(status=status))
    with pytest.raises(DownloadError) as caught:
        download_file(url, tmp_path / "data.bin")
    assert f"cannot download {url}: {phrase}; check the URL" in str(caught.value)
    assert len(http_server.requests()) == 1
    assert sleeps == []
    assert list(tmp_path.iterdir()) == []  # not even an empty part file


def test_missing_file_on_server_is_a_404(http_server: LoopbackServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(http_server.base_url + "/nothing", tmp_path / "nothing")


def test_answer_without_content_length_is_accepted(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA, Fault(no_length=True))
    download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_part_left_by_a_killed_run_is_resumed(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    part_path(tmp_path / "data.bin").write_bytes(DATA[:123_456])
    outcome = download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert [request.range for request in http_server.requests()] == ["bytes=123456-"]
    assert outcome.resumed


@pytest.mark.parametrize("ignores_range", [False, True], ids=["resumed", "restarted"])
def test_a_big_file_goes_to_the_disk_while_it_is_written_from_where_a_resume_starts(
    http_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ignores_range: bool
) -> None:
    data = os.urandom(3 * WRITEBACK_BYTES + 300_000)
    url = http_server.add("/big.bin", data, *([Fault(ignore_range=True)] if ignores_range else []))
    kept = 1_000_000
    part_path(tmp_path / "big.bin").write_bytes(data[:kept])  # a server that ignores the Range: from 0
    ranges: list[tuple[int, int]] = []
    real = part.start_writeback

    def recording(descriptor: int, offset: int, length: int) -> None:
        ranges.append((offset, length))
        real(descriptor, offset, length)

    monkeypatch.setattr(part, "start_writeback", recording)
    download_file(url, tmp_path / "big.bin", checksum=Checksum("sha256", hashlib.sha256(data).hexdigest()))
    assert (tmp_path / "big.bin").read_bytes() == data
    # Every new byte is in one range, in order from the resume's first, each range WRITEBACK_BYTES or a
    # little more (reads may end anywhere); what is left after the last is for the final fsync.
    assert len(ranges) == (3 if ignores_range else 2)
    assert ranges[0][0] == (0 if ignores_range else kept)
    assert all(first + length == second for (first, length), (second, _) in itertools.pairwise(ranges))
    assert all(WRITEBACK_BYTES <= length < WRITEBACK_BYTES + CHUNK_BYTES for _, length in ranges)
    assert len(data) - sum(ranges[-1]) < WRITEBACK_BYTES


def test_ignored_range_restarts_the_file_cleanly(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA, Fault(ignore_range=True))
    part_path(tmp_path / "data.bin").write_bytes(b"stale bytes that must not survive")
    outcome = download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert not outcome.resumed


def test_wrong_range_restarts_the_file_cleanly(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA, Fault(wrong_start=50))
    part_path(tmp_path / "data.bin").write_bytes(DATA[:1000])
    download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert [request.range for request in http_server.requests()] == ["bytes=1000-", None]


def test_part_holding_the_whole_file_is_finished_without_a_body(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.bin", DATA)
    part_path(tmp_path / "data.bin").write_bytes(DATA)
    download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert [request.range for request in http_server.requests()] == [f"bytes={len(DATA)}-"]


def test_part_longer_than_the_file_restarts(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    part_path(tmp_path / "data.bin").write_bytes(DATA + b"extra")
    download_file(url, tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_part_of_another_url_is_resumed_only_with_a_checksum(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.bin", DATA)
    part = part_path(tmp_path / "data.bin")
    for checksum, expected_range in ((None, None), (SHA256, "bytes=1000-")):
        part.write_bytes(DATA[:1000])
        write_origin(part, PartOrigin(http_server.base_url + "/mirror.bin", Validators('"other"')))
        download_file(url, tmp_path / "data.bin", checksum=checksum)
        assert (tmp_path / "data.bin").read_bytes() == DATA
        assert http_server.requests()[-1].range == expected_range
        assert list(tmp_path.glob("*.part*")) == []


def test_changed_file_restarts_from_byte_0_instead_of_splicing(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    old, new = BIG, os.urandom(len(BIG))
    url = http_server.add("/data.bin", old, Fault(cut_after=200_000), Fault(status=404))
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(url, tmp_path / "data.bin", retry=RetryPolicy(sleep=lambda _: None))
    assert part_path(tmp_path / "data.bin").stat().st_size == 200_000  # kept, with its ETag beside it
    old_etag = http_server.requests()[0]
    http_server.add("/data.bin", new)  # the file changes on the server: a new ETag

    outcome = download_file(url, tmp_path / "data.bin")
    assert (tmp_path / "data.bin").read_bytes() == new
    assert not outcome.resumed
    last = http_server.requests()[-1]
    assert (last.range, last.if_range is not None) == ("bytes=200000-", True)
    assert old_etag.if_range is None


def test_unchanged_file_resumes_with_if_range(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", BIG, Fault(cut_after=200_000), Fault(status=404))
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(url, tmp_path / "data.bin", retry=RetryPolicy(sleep=lambda _: None))
    outcome = download_file(url, tmp_path / "data.bin")
    assert (tmp_path / "data.bin").read_bytes() == BIG
    assert outcome.resumed
    assert http_server.sent_bytes("/data.bin") == len(BIG)
    assert http_server.requests()[-1].if_range is not None


def test_part_without_validators_is_resumed_only_with_a_checksum(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    faults = (Fault(cut_after=200_000, no_validators=True), Fault(status=404))
    url = http_server.add("/data.bin", BIG, *faults)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(url, tmp_path / "data.bin", retry=RetryPolicy(sleep=lambda _: None))
    http_server.add("/data.bin", BIG, Fault(no_validators=True), Fault(no_validators=True))
    download_file(url, tmp_path / "data.bin")
    assert http_server.requests()[-1].range is None  # no validator, no checksum: from the start

    part_path(tmp_path / "data.bin").write_bytes(BIG[:5000])
    (tmp_path / "data.bin").unlink()
    big_sha256 = Checksum("sha256", hashlib.sha256(BIG).hexdigest())
    assert download_file(url, tmp_path / "data.bin", checksum=big_sha256).resumed
    assert http_server.requests()[-1].range == "bytes=5000-"


def test_unresolvable_host_fails_at_once(tmp_path: Path, sleeps: list[float]) -> None:
    url = "http://no-such-host.invalid/data.bin"
    with pytest.raises(DownloadError) as caught:
        download_file(url, tmp_path / "data.bin")
    assert f"cannot download {url}: cannot resolve host no-such-host.invalid" in str(caught.value)
    assert sleeps == []
    assert list(tmp_path.iterdir()) == []


def test_stalled_transfer_times_out_and_resumes(
    http_server: LoopbackServer, tmp_path: Path, sleeps: list[float]
) -> None:
    data = os.urandom(3 * CHUNK_BYTES)
    url = http_server.add("/data.bin", data, Fault(stall_after=2 * CHUNK_BYTES + 1000))
    download_file(url, tmp_path / "data.bin", timeout_s=0.2)
    assert (tmp_path / "data.bin").read_bytes() == data
    # the chunk being read when the stall hit is fetched again: parts grow by whole chunks
    assert [request.range for request in http_server.requests()] == [None, f"bytes={2 * CHUNK_BYTES}-"]
    assert sleeps == [1.0]


def test_connection_refused_is_retried_briefly(tmp_path: Path, sleeps: list[float]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/data.bin"
    with pytest.raises(DownloadError) as caught:
        download_file(url, tmp_path / "data.bin")
    assert f"cannot download {url}: connection refused (gave up after 4 attempts" in str(caught.value)
    assert sleeps == [0.5, 1.0, 2.0]  # at most 3 retries within 5 s
    assert list(tmp_path.iterdir()) == []


def test_file_url_is_copied(tmp_path: Path) -> None:
    source = tmp_path / "mirror" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(DATA)
    download_file(source.as_uri(), tmp_path / "data.bin", checksum=SHA256)
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_file_url_resumes_a_part(tmp_path: Path) -> None:
    source = tmp_path / "mirror" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(DATA)
    part_path(tmp_path / "data.bin").write_bytes(DATA[:5000])
    assert download_file(source.as_uri(), tmp_path / "data.bin", checksum=SHA256).resumed


def test_missing_file_url_fails_at_once(tmp_path: Path) -> None:
    url = (tmp_path / "absent.bin").as_uri()
    with pytest.raises(DownloadError, match="does not exist; check the path"):
        download_file(url, tmp_path / "data.bin")


def test_cancel_keeps_the_part_for_resuming(http_server: LoopbackServer, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_BYTES)
    url = http_server.add("/data.bin", data)
    cancel = threading.Event()

    class CancelAfterFirstChunk(NoProgress):
        def advance(self, n_bytes: int) -> None:
            cancel.set()

    with pytest.raises(DownloadCancelledError):
        download_file(url, tmp_path / "data.bin", cancel=cancel, progress=CancelAfterFirstChunk())
    assert not (tmp_path / "data.bin").exists()
    part = part_path(tmp_path / "data.bin")
    assert 0 < part.stat().st_size < len(data)
    assert part.read_bytes() == data[: part.stat().st_size]


def test_cancel_before_any_byte_leaves_no_part(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelledError):
        download_file(url, tmp_path / "data.bin", cancel=cancel)
    assert list(tmp_path.iterdir()) == []
    assert http_server.requests() == []  # a cancelled run starts no transfer


def test_no_resume_starts_from_scratch(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    part_path(tmp_path / "data.bin").write_bytes(b"garbage")
    download_file(url, tmp_path / "data.bin", checksum=SHA256, resume=False)
    assert [request.range for request in http_server.requests()] == [None]


def test_mismatch_after_resuming_downloads_the_whole_file_once_more(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    url = http_server.add("/data.bin", BIG)
    part_path(tmp_path / "data.bin").write_bytes(b"x" * 5000)  # bytes of another version, no origin
    big_sha256 = Checksum("sha256", hashlib.sha256(BIG).hexdigest())
    outcome = download_file(url, tmp_path / "data.bin", checksum=big_sha256)
    assert (tmp_path / "data.bin").read_bytes() == BIG
    assert not outcome.resumed
    assert [request.range for request in http_server.requests()] == ["bytes=5000-", None]
