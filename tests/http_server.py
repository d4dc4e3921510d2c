"""A real HTTP server on 127.0.0.1 for tests, whose answers can be scripted per request to simulate faults.

It speaks HTTP/1.1 with keep-alive and sets TCP_NODELAY, as production servers do (otherwise keep-alive
requests wait out delayed ACKs). Each file has an ETag (a hash of its bytes) and a Last-Modified date, and
``If-Range`` is honoured: a range request whose validator no longer matches gets the whole file.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SAFETY_TIMEOUT_S = 10.0
"""The longest a handler waits for a release or a barrier, so a failing test cannot hang."""


@dataclass(frozen=True)
class Fault:
    """How to answer one request; the default answers normally."""

    status: int = 200
    retry_after: str | None = None
    cut_after: int | None = None
    """Send this many bytes of the body, then close the connection."""
    stall_after: int | None = None
    """Send this many bytes of the body, then pause until the server is released, then send the rest."""
    no_length: bool = False
    """Send no Content-Length; the end of the body is marked by closing the connection."""
    ignore_range: bool = False
    """Answer 200 with the whole file even when asked for a range."""
    wrong_start: int | None = None
    """Answer a range request with the bytes from this offset instead of the one asked for."""
    latency_s: float = 0.0
    no_validators: bool = False
    """Send neither ETag nor Last-Modified, and ignore If-Range."""
    barrier: threading.Barrier | None = None
    """Wait until as many requests wait here, to prove that requests run concurrently."""


@dataclass(frozen=True)
class Request:
    """A request the server received."""

    path: str
    range: str | None
    if_range: str | None = None
    authorization: str | None = None


class LoopbackServer:
    """Serve files from memory; each file has a queue of faults used by its next requests."""

    def __init__(self) -> None:
        self.release = threading.Event()
        """Set to end every stall (the fixture sets it at teardown)."""
        self._files: dict[str, bytes] = {}
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._requests: list[Request] = []
        self._sent: dict[str, int] = defaultdict(int)
        self._in_flight = 0
        self.max_in_flight = 0
        """The most requests that were at the server at once, each counted from its arrival until its answer
        begins (a client's next request, sent once the answer has arrived, never overlaps it)."""
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = _Server(self)
        # a short poll interval makes shutdown() quick: it waits for the serving loop to notice
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="test-http-server"
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, path: str, data: bytes, *faults: Fault) -> str:
        """Serve ``data`` at ``path`` (replacing what was there), answering its next requests with ``faults``;
        return its URL."""
        with self._lock:
            self._files[path] = data
            self._faults[path].extend(faults)
        return self.base_url + path

    def requests(self, path: str | None = None) -> list[Request]:
        """Return the requests received so far, for ``path`` or all."""
        with self._lock:
            return [request for request in self._requests if path is None or request.path == path]

    def wait_for_requests(self, count: int) -> bool:
        """Wait until ``count`` requests have been received (at most ``SAFETY_TIMEOUT_S``); tell whether they
        were."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._requests) >= count, SAFETY_TIMEOUT_S)

    def sent_bytes(self, path: str) -> int:
        """Return how many body bytes were sent for ``path`` so far."""
        with self._lock:
            return self._sent[path]

    def stop(self) -> None:
        """Release stalls, stop serving and wait for every handler to end."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def next_answer(
        self,
        path: str,
        range_header: str | None,
        if_range: str | None = None,
        authorization: str | None = None,
    ) -> tuple[bytes | None, Fault]:
        with self._lock:
            self._requests.append(Request(path, range_header, if_range, authorization))
            self._arrived.notify_all()
            faults = self._faults[path]
            return self._files.get(path), faults.popleft() if faults else Fault()

    def count_sent(self, path: str, n_bytes: int) -> None:
        with self._lock:
            self._sent[path] += n_bytes

    def count_in_flight(self, change: int) -> None:
        with self._lock:
            self._in_flight += change
            self.max_in_flight = max(self.max_in_flight, self._in_flight)


class _Server(ThreadingHTTPServer):
    block_on_close = True  # server_close() joins the handlers, so no socket outlives a test

    def __init__(self, owner: LoopbackServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that went away (timed out, killed): that is what the tests make them do."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # TCP_NODELAY
    timeout = SAFETY_TIMEOUT_S  # an idle keep-alive connection cannot hold up the server's shutdown

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.count_in_flight(+1)
        try:
            headers = self.headers
            data, fault = owner.next_answer(
                self.path, headers.get("Range"), headers.get("If-Range"), headers.get("Authorization")
            )
            if fault.barrier is not None:
                fault.barrier.wait(SAFETY_TIMEOUT_S)
            if fault.latency_s:
                threading.Event().wait(fault.latency_s)
        finally:
            owner.count_in_flight(-1)  # before the answer, so a client's next request cannot overlap it
        if data is None or fault.status != 200:
            self._send_status(404 if data is None else fault.status, fault.retry_after)
            return
        start = self._range_start(fault, data)
        if start is not None and start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send_body(data, start, fault)

    def _range_start(self, fault: Fault, data: bytes) -> int | None:
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match is None or fault.ignore_range:
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None and not fault.no_validators and if_range not in _validators(data):
            return None  # the file changed since the validator was given: send all of it
        return int(match[1]) if fault.wrong_start is None else fault.wrong_start

    def _send_body(self, data: bytes, start: int | None, fault: Fault) -> None:
        body = data[start or 0 :]
        self.send_response(200 if start is None else 206)
        if not fault.no_validators:
            etag, last_modified = _validators(data)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if not fault.no_length:
            self.send_header("Content-Length", str(len(body)))
        if fault.no_length or fault.cut_after is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        limit = fault.cut_after if fault.cut_after is not None else fault.stall_after
        self._write(body if limit is None else body[:limit])
        if fault.stall_after is not None:
            self.server.owner.release.wait(SAFETY_TIMEOUT_S)
            self._write(body[fault.stall_after :])  # fails quietly if the client went away

    def _write(self, chunk: bytes) -> None:
        self.wfile.write(chunk)
        self.wfile.flush()
        self.server.owner.count_sent(self.path, len(chunk))

    def _send_status(self, status: int, retry_after: str | None) -> None:
        body = f"status {status}\n".encode()
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


def _validators(data: bytes) -> tuple[str, str]:
    """Return the ETag and Last-Modified of ``data``: both change whenever the bytes do."""
    digest = hashlib.sha256(data).hexdigest()
    seconds = int(digest[:6], 16)  # a date that differs for different bytes
    last_modified = formatdate(1_600_000_000 + seconds, usegmt=True)
    return f'"{digest[:16]}"', last_modified
