"""Tests of the committer, which puts downloaded files in place and records them in groups."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from emloop_ds.core.download import commit
from emloop_ds.core.download.checksum import Checksum
from emloop_ds.core.download.commit import Committer, Handover
from emloop_ds.core.download.fetch import fetch_dataset
from emloop_ds.core.download.journal import Journal
from emloop_ds.core.download.state import StateStore
from emloop_ds.core.errors import DownloadCancelledError
from tests.http_server import LoopbackServer

SAFETY_TIMEOUT_S = 30.0


def _handover(root: Path, name: str, data: bytes) -> Handover:
    part = root / f"{name}.part"
    part.write_bytes(data)
    checksum = Checksum("sha256", hashlib.sha256(data).hexdigest())
    return Handover(name, f"http://example.invalid/{name}", part, root / name, checksum, False)


def test_files_handed_over_during_a_commit_are_put_in_place_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes: list[str] = []
    fsync_folder, sync = commit.fsync_folder, Journal.sync

    def counted_fsync_folder(folder: Path) -> None:
        flushes.append(f"folder {folder.name}")
        fsync_folder(folder)

    def counted_sync(journal: Journal) -> None:
        flushes.append("journal")
        sync(journal)

    monkeypatch.setattr(commit, "fsync_folder", counted_fsync_folder)
    monkeypatch.setattr(Journal, "sync", counted_sync)
    store = StateStore(tmp_path)
    committer = Committer(store, max_waiting=16)
    first_reported, go_on = threading.Event(), threading.Event()

    def hold_the_committer(_: Handover) -> None:
        first_reported.set()
        assert go_on.wait(SAFETY_TIMEOUT_S)

    first = _handover(tmp_path, "first.bin", b"first")
    first.on_done = hold_the_committer
    committer.hand_over(first)
    assert first_reported.wait(SAFETY_TIMEOUT_S)
    others = [_handover(tmp_path, f"f{n}.bin", bytes([n]) * 100) for n in range(5)]
    for handover in others:
        committer.hand_over(handover)  # all wait while the committer reports the first file
    go_on.set()
    committer.close()
    assert committer.groups == 2
    for handover in [first, *others]:
        assert handover.error is None
        assert not handover.part.exists()
        record = store.find(handover.filename, handover.checksum)
        assert record is not None
        assert record == handover.wait()
    [journal] = (tmp_path / ".emloop-ds" / "journal").iterdir()
    stamps = [json.loads(line)["stamp"] for line in journal.read_bytes().splitlines()]
    assert len(stamps) == 6
    assert len(set(stamps[1:])) == 1
    assert flushes == [f"folder {tmp_path.name}", "journal"] * 2  # per group: the names, then the records


def test_a_file_that_cannot_be_put_in_place_fails_alone(http_server: LoopbackServer, tmp_path: Path) -> None:
    urls = [http_server.add("/blocked.bin", b"blocked"), http_server.add("/fine.bin", b"fine")]
    (tmp_path / "blocked.bin").mkdir()  # a folder where the file should go
    (tmp_path / "blocked.bin" / "keep.txt").write_text("mine")
    blocked, fine = fetch_dataset(tmp_path, urls, jobs=2)
    assert blocked.status == "failed"
    assert blocked.error is not None
    assert "cannot move" in str(blocked.error)
    assert "blocked.bin" in str(blocked.error)
    assert fine.status == "downloaded"
    assert (tmp_path / "fine.bin").read_bytes() == b"fine"
    assert (tmp_path / "blocked.bin" / "keep.txt").read_text() == "mine"
    assert StateStore(tmp_path).find("blocked.bin", None) is None  # never recorded


def test_a_commit_after_the_committer_closed_keeps_the_part(tmp_path: Path) -> None:
    committer = Committer(StateStore(tmp_path), max_waiting=1)
    committer.close()
    handover = _handover(tmp_path, "late.bin", b"late")
    with pytest.raises(DownloadCancelledError, match="kept for resuming"):
        committer.hand_over(handover)
    assert handover.part.read_bytes() == b"late"


def _netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str) -> Path:
    """Write a ~/.netrc with credentials for ``machine`` and point NETRC at it."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {machine} login reader password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_netrc_credentials_go_with_every_request_to_their_host_only(
    http_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = _netrc(tmp_path, monkeypatch, "127.0.0.1")
    urls = [http_server.add(f"/f{n}.bin", bytes([n]) * 10) for n in range(4)]
    results = fetch_dataset(tmp_path / "with", urls, jobs=2)
    assert [result.status for result in results] == ["downloaded"] * 4
    expected = "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert [request.authorization for request in http_server.requests()] == [expected] * 4
    netrc.write_text("machine elsewhere.invalid login reader password s3cret\n")
    results = fetch_dataset(tmp_path / "without", urls, jobs=2)
    assert [result.status for result in results] == ["downloaded"] * 4
    assert [request.authorization for request in http_server.requests()[4:]] == [None] * 4


def test_the_download_path_imports_requests_only_to_fetch() -> None:
    # a no-op re-run goes through fetch and the committer's module, never through HTTP
    code = "import sys, emloop_ds.core.download.fetch; print('requests' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_credentials_in_a_url_are_sent_when_netrc_has_none_for_its_host(
    http_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _netrc(tmp_path, monkeypatch, "elsewhere.invalid")
    urls = [http_server.add(f"/f{n}.bin", b"x").replace("://", "://user:pw@") for n in range(3)]
    results = fetch_dataset(tmp_path / "data", urls, jobs=2)
    assert [result.status for result in results] == ["downloaded"] * 3
    expected = "Basic " + base64.b64encode(b"user:pw").decode()
    assert [request.authorization for request in http_server.requests()] == [expected] * 3
