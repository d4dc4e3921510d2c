"""Download one URL to a file: atomically, resuming only what can be validated, retrying, and hashing while
streaming.

Bytes go to ``<target>.part`` beside the target and are renamed to it only when complete, verified and
flushed to disk (NOTE [durable rename]).

NOTE [resume]: a part file is continued only when its bytes are known to be the same version of the file
that the server holds now:
- bytes from the same URL with a validator (a strong ETag or Last-Modified, recorded beside the part) are
  continued with ``Range`` and ``If-Range``. A server whose file changed sends the whole file instead, and
  the part restarts from byte 0: a new version is never spliced onto an old one. A 206 answer whose ETag
  differs from the recorded one (a server ignoring If-Range) restarts the part too.
- otherwise (no validators, or a part from another mirror) only when a checksum is configured, which
  verifies the joined bytes; a mismatch after resuming downloads the file once more from byte 0.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import requests

from emloop_ds.core.download import retry as retry_rules
from emloop_ds.core.download.checksum import CHUNK_BYTES, DEFAULT_ALGORITHM, Checksum
from emloop_ds.core.download.durable import fsync_folder
from emloop_ds.core.download.part import (
    PartFile,
    PartOrigin,
    part_path,
    read_origin,
    remove_part,
    write_origin,
)
from emloop_ds.core.download.progress import FileProgress, NoProgress
from emloop_ds.core.download.response import (
    Body,
    RefusedError,
    RestartError,
    RetryableError,
    Validators,
    open_body,
)
from emloop_ds.core.download.retry import RetryPolicy
from emloop_ds.core.download.session import RetryWaits, open_session
from emloop_ds.core.errors import ChecksumError, DownloadCancelledError, DownloadError

__all__ = ["Client", "DownloadOutcome", "download_file", "open_client", "part_path"]


@dataclass(frozen=True)
class DownloadOutcome:
    """What a finished download produced."""

    size_bytes: int
    checksum: Checksum
    resumed: bool
    """Whether bytes of an earlier attempt or run were kept rather than fetched again."""
    part: Path | None = None
    """With ``put_in_place=False``: the verified part file, on disk, still to be renamed and recorded."""
    has_origin_file: bool = False
    """Whether an origin record lies beside the part, to be removed once the part is in place."""


@dataclass(frozen=True)
class Client:
    """What the files of one run share: the HTTP session (keep-alive), the retry waits, the timeout, and the
    slots that bound how many transfers run at once (NOTE [transfer slots])."""

    session: requests.Session
    waits: RetryWaits
    timeout_s: float
    slots: threading.Semaphore

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def open_client(
    jobs: int = 1,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
) -> Client:
    """Open the client of a run of ``jobs`` parallel transfers; close it when the run ends."""
    waits = RetryWaits(retry or retry_rules.DEFAULT_RETRY, cancel or threading.Event())
    return Client(open_session(jobs, waits), waits, timeout_s, threading.Semaphore(jobs))


# NOTE [transfer slots]: a file holds one of the client's ``jobs`` slots from opening its part file until
# its last byte has arrived (its requests, retries included). Flushing it to disk, renaming it and
# recording it happen after the slot is given back (in a run, by the committer: NOTE [group commit]), so
# the next transfer starts while the last one is being flushed: with 8 jobs of 1 MB files at 100 ms
# latency, each wave of requests otherwise waited ~30 ms for the fsyncs of the one before.


def download_file(
    url: str,
    target: Path,
    *,
    client: Client | None = None,
    checksum: Checksum | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    progress: FileProgress | None = None,
    cancel: threading.Event | None = None,
    resume: bool = True,
    put_in_place: bool = True,
) -> DownloadOutcome:
    """Download ``url`` to ``target``, resuming a part left earlier (NOTE [resume]) if ``resume``.

    ``client`` is the run's shared client; without one, a client for this file alone is opened (and
    ``timeout_s``, ``retry`` and ``cancel`` configure it). Without ``put_in_place`` the verified part is
    flushed to disk and left for the caller to rename and record with others (``commit.py``).

    Raises:
        DownloadError: if the URL cannot be fetched, after retries where a retry may help.
        ChecksumError: if the bytes do not match ``checksum``; neither a part nor a final file is kept.
        DownloadCancelledError: if the run is cancelled; the part file is kept for resuming.
    """
    if client is None:
        own = open_client(1, timeout_s, retry, cancel)
        try:
            return download_file(
                url,
                target,
                client=own,
                checksum=checksum,
                progress=progress,
                resume=resume,
                put_in_place=True,
            )
        finally:
            own.close()
    progress = progress or NoProgress()
    with client.waits.reporting_to(progress):
        return _download(url, target, client, checksum, progress, resume, put_in_place)


@dataclass
class _Continuation:
    """What is known about the bytes in the part file, to decide whether they may be continued."""

    has_checksum: bool
    validators: Validators | None
    """The validators of the version the part's bytes belong to, when they came from this URL."""
    has_origin_file: bool = False
    """Whether an origin record may lie beside the part, to be removed with it."""

    def may_continue(self) -> bool:
        is_validated = self.validators is not None and self.validators.if_range() is not None
        return self.has_checksum or is_validated


def _download(
    url: str,
    target: Path,
    client: Client,
    checksum: Checksum | None,
    progress: FileProgress,
    resume: bool,
    put_in_place: bool,
) -> DownloadOutcome:
    part = part_path(target)
    has_part = resume and part.exists()  # the caller holds the file's lock: no one else makes one now
    origin = read_origin(part) if has_part else None
    continuation = _Continuation(
        checksum is not None, origin.validators if origin and origin.url == url else None, origin is not None
    )
    keep = has_part and continuation.may_continue()
    algorithm = checksum.algorithm if checksum is not None else DEFAULT_ALGORITHM
    while True:
        try:
            with contextlib.ExitStack() as open_part:
                with client.slots:  # opening the part (and hashing what it holds) is bounded by them too
                    if client.waits.cancel.is_set():  # cancelled while waiting for the slot
                        raise DownloadCancelledError("interrupted before the transfer began")
                    part_file = open_part.enter_context(PartFile(part, algorithm, keep))
                    _fetch_with_retries(url, part_file, client, progress, continuation)
                actual = part_file.finish()  # flushed here, by this thread, outside its transfer slot
                size_bytes, resumed = part_file.size, part_file.resumed
        except DownloadError:
            _remove_if_empty(part)  # a part that received nothing has nothing to resume
            raise
        if checksum is None or actual == checksum:
            break
        if not resumed:
            remove_part(part)
            raise ChecksumError(
                f"checksum mismatch for {url}: expected {checksum}, got {actual.digest}; the file was not "
                f"kept. Check {checksum.algorithm} in the config or ask the data's publisher"
            )
        progress.note("checksum mismatch after resuming; downloading the whole file again")
        keep, continuation = False, _Continuation(True, None, continuation.has_origin_file)
    if not put_in_place:
        return DownloadOutcome(size_bytes, actual, resumed, part, continuation.has_origin_file)
    try:
        os.replace(part, target)  # the part was flushed by finish(): NOTE [durable rename]
        fsync_folder(target.parent)
    except OSError as exc:
        raise DownloadError(f"cannot move {part} to {target}: {exc.strerror}; check data_root") from exc
    if continuation.has_origin_file:
        remove_part(part)  # its origin record
    return DownloadOutcome(size_bytes, actual, resumed)


def _remove_if_empty(part: Path) -> None:
    try:
        if part.stat().st_size == 0:
            remove_part(part)
    except FileNotFoundError:
        pass


def _fetch_with_retries(
    url: str, part: PartFile, client: Client, progress: FileProgress, continuation: _Continuation
) -> None:
    policy = client.waits.policy
    failures = refused = 0
    while True:
        size_before = part.size
        try:
            _fetch_once(url, part, client, progress, continuation)
            return
        except RestartError as exc:
            progress.note(f"{exc}; downloading from the start")
            part.restart()  # the next request asks for the whole file
            continuation.validators = None
        except RefusedError as exc:
            refused += 1
            if refused > policy.refused_retries:
                raise DownloadError(
                    f"cannot download {url}: connection refused (gave up after {refused} attempts); "
                    "check that the server is up and the URL's host and port"
                ) from exc
            delay_s = policy.refused_backoff_s * 2.0 ** (refused - 1)
            client.waits.wait(exc.reason, refused, policy.refused_retries, delay_s)
        except RetryableError as exc:
            failures = 1 if part.size > size_before else failures + 1
            if failures >= policy.attempts:
                raise DownloadError(
                    f"cannot download {url}: {exc.reason} (gave up after {failures} attempts in a row); "
                    "check the URL and the network, then run again to resume"
                ) from exc
            client.waits.wait(exc.reason, failures, policy.attempts - 1, policy.backoff(failures))


def _fetch_once(
    url: str, part: PartFile, client: Client, progress: FileProgress, continuation: _Continuation
) -> None:
    if part.size and not continuation.may_continue():
        part.restart()
    if_range = continuation.validators.if_range() if continuation.validators is not None else None
    body = open_body(client.session, url, part.size, if_range, client.timeout_s)
    if body is None:  # the server says the part already holds the whole file
        return
    with body:
        _align(part, body, continuation)
        if body.start == 0:
            if body.total_bytes is None or body.total_bytes > CHUNK_BYTES:
                write_origin(part.path, PartOrigin(url, body.validators))  # for resuming (NOTE [resume])
                continuation.has_origin_file = True
            continuation.validators = body.validators
        progress.start(body.total_bytes, part.size)
        part.write_from(body, progress, client.waits.cancel)
    if body.total_bytes is not None and part.size < body.total_bytes:
        raise RetryableError(f"connection closed after {part.size} of {body.total_bytes} bytes")


def _align(part: PartFile, body: Body, continuation: _Continuation) -> None:
    """Make the part file hold exactly the bytes before the body's first byte, or fail the attempt."""
    if body.start == part.size:
        if body.start and _has_changed(continuation.validators, body.validators):
            raise RestartError("the file changed on the server since the part was downloaded")
        part.resumed = part.resumed or body.start > 0
    elif body.start == 0:
        part.restart()  # the server ignored Range, or its file changed (If-Range): take it from the start
    elif part.size == 0:
        raise RetryableError(f"the server sent bytes from {body.start} on when asked for the whole file")
    else:
        raise RestartError(f"the server sent bytes from {body.start} on when asked from {part.size}")


def _has_changed(known: Validators | None, answer: Validators) -> bool:
    if known is None:
        return False
    if known.etag and answer.etag:
        return known.etag != answer.etag
    return bool(known.last_modified and answer.last_modified and known.last_modified != answer.last_modified)
