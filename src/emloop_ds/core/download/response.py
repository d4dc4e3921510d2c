"""Open a URL (http, https or file) at a byte offset and say which bytes the answer holds.

HTTP goes through the run's ``requests`` session (see ``session.py``), which retries statuses that may
pass. Failures that may pass on our own retry (connection errors, timeouts, cut transfers) become
``RetryableError``; those that will not (404, 403, an unresolvable host, a missing local file, a bad
certificate, a status still failing after urllib3's retries) become ``DownloadError``.

NOTE [fail fast]: a host name that does not resolve fails its URL at once, temporary resolver failures
included: a name that does not resolve now rarely does a few seconds later, and the entry's next mirror is
the better bet. A refused connection (nothing listens) is retried a few times within seconds, for a
server that is restarting. Everything else that may pass follows the backoff rule (1, 2, 4, 8 s).
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests
import urllib3.exceptions

from emloop_ds.core.errors import DownloadError

__all__ = ["Body", "RefusedError", "RestartError", "RetryableError", "Validators", "open_body"]

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


class RetryableError(Exception):
    """A transfer failed for a reason that may pass; ``reason`` is one short phrase for messages."""

    def __init__(self, reason: str) -> None:
        """Record the reason."""
        super().__init__(reason)
        self.reason = reason


class RefusedError(RetryableError):
    """The connection was refused: retried only briefly (NOTE [fail fast])."""


class RestartError(Exception):
    """The bytes already downloaded cannot be continued; empty the part file and start over at once."""


@dataclass(frozen=True)
class Validators:
    """What identifies one version of a file on its server: ``ETag`` and ``Last-Modified``."""

    etag: str | None = None
    last_modified: str | None = None

    def if_range(self) -> str | None:
        """Return the value for ``If-Range``: a strong ETag, else Last-Modified; ``None`` if neither."""
        if self.etag and not self.etag.startswith("W/"):  # If-Range needs a strong validator
            return self.etag
        return self.last_modified


class Body:
    """The bytes of a URL from ``start`` on, as one answer delivers them; a context manager."""

    def __init__(
        self,
        stream: Any,
        start: int,
        total_bytes: int | None,
        timeout_s: float,
        validators: Validators = Validators(),
    ) -> None:
        """Wrap ``stream`` (``readinto``, ``close``); ``total_bytes`` is the whole file's size or ``None``."""
        self.start = start
        self.total_bytes = total_bytes
        self.validators = validators
        self._stream = stream
        self._timeout_s = timeout_s

    def readinto(self, buffer: bytearray) -> int:
        """Read the next bytes into ``buffer``; return 0 at the end.

        Raises:
            RetryableError: if the connection stalls, is reset or is cut.
        """
        try:
            return int(self._stream.readinto(buffer))
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError) as exc:
            raise RetryableError(f"no data for {self._timeout_s:g} s (stalled transfer)") from exc
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise RetryableError(_describe(exc, self._timeout_s)) from exc

    def close(self) -> None:
        """Close the connection or file (a connection read to its end goes back to the pool)."""
        self._stream.close()

    def __enter__(self) -> Body:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_body(
    session: requests.Session, url: str, offset: int, if_range: str | None, timeout_s: float
) -> Body | None:
    """Ask for the bytes of ``url`` from ``offset`` on; ``None`` means the server says there are none left.

    The body may start elsewhere (at 0 if the server ignores Range, or if the file changed and ``if_range``
    no longer matches it); the caller checks ``Body.start``.

    Raises:
        RetryableError: for failures that may pass.
        RestartError: if the server cannot send bytes from ``offset`` on (HTTP 416).
        DownloadError: for failures that will not pass.
    """
    if urllib.parse.urlsplit(url).scheme.lower() == "file":
        return _open_file(url, offset, timeout_s)
    headers = {}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if if_range is not None:
            headers["If-Range"] = if_range
    try:
        response = session.get(url, headers=headers, stream=True, timeout=(timeout_s, timeout_s))
    except requests.RequestException as exc:
        raise _request_error(url, exc, timeout_s) from exc
    try:
        return _body(url, response, offset, timeout_s)
    except BaseException:
        response.close()
        raise


def _body(url: str, response: requests.Response, offset: int, timeout_s: float) -> Body | None:
    headers = response.headers
    validators = Validators(headers.get("ETag"), headers.get("Last-Modified"))
    length = _to_int(headers.get("Content-Length"))
    if response.status_code == 200:
        return Body(_RawStream(response), 0, length, timeout_s, validators)
    if response.status_code == 206:
        match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
        if match is None:
            raise RetryableError("the server sent part of the file without a valid Content-Range")
        start = int(match[1])
        total = int(match[3]) if match[3] != "*" else None if length is None else start + length
        return Body(_RawStream(response), start, total, timeout_s, validators)
    if response.status_code == 416 and offset:
        match = _UNSATISFIED_RANGE.fullmatch(headers.get("Content-Range", "").strip())
        response.close()
        if match is not None and int(match[1]) == offset:
            return None  # the part already holds the whole file
        raise RestartError(f"the server cannot send bytes from {offset} on (HTTP 416)")
    raise _status_error(url, response)


def _status_error(url: str, response: requests.Response) -> DownloadError:
    code, reason = response.status_code, response.reason
    retries = getattr(response.raw, "retries", None)
    attempts = 1 + len(retries.history) if retries is not None else 1
    retry_after = response.headers.get("Retry-After")
    if code in (429, 503) and retry_after is not None and attempts == 1:
        wait = retry_after.strip()
        wait = f"{wait} s" if wait.isdigit() else f"until {wait}"
        return DownloadError(
            f"cannot download {url}: HTTP {code} {reason}, and the server asks to wait {wait} before "
            "retrying (Retry-After); run again later"
        )
    if attempts > 1:
        return DownloadError(
            f"cannot download {url}: HTTP {code} {reason} (gave up after {attempts} attempts in a row); "
            "check the URL and the network, then run again to resume"
        )
    hint = "check the URL and whether it needs a login (~/.netrc)" if code in (401, 403) else "check the URL"
    return DownloadError(f"cannot download {url}: HTTP {code} {reason}; {hint}")


def _request_error(url: str, exc: requests.RequestException, timeout_s: float) -> Exception:
    if isinstance(exc, requests.exceptions.SSLError):
        return DownloadError(
            f"cannot download {url}: certificate verification failed ({_first_line(exc)}); check the URL, "
            "the system's CA certificates or REQUESTS_CA_BUNDLE"
        )
    causes = list(_causes(exc))
    if any(isinstance(c, (urllib3.exceptions.NameResolutionError, socket.gaierror)) for c in causes):
        host = urllib.parse.urlsplit(url).hostname
        return DownloadError(
            f"cannot download {url}: cannot resolve host {host}; check the URL and the network"
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return RefusedError("connection refused")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return RetryableError(_describe(exc, timeout_s))
    return DownloadError(f"cannot download {url}: {_first_line(exc)}; check the URL")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and everything it wraps: causes, contexts and the reasons urllib3 attaches."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))


class _RawStream:
    """Read an HTTP body as it arrives on the wire, with no decoding."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self._raw = response.raw

    def readinto(self, buffer: bytearray) -> int:
        data = self._raw.read(len(buffer), decode_content=False)
        n_bytes = len(data)
        buffer[:n_bytes] = data
        return n_bytes

    def close(self) -> None:
        self._response.close()


def _open_file(url: str, offset: int, timeout_s: float) -> Body:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    try:
        stream: IO[bytes] = path.open("rb")
    except FileNotFoundError as exc:
        raise DownloadError(f"cannot download {url}: {path} does not exist; check the path") from exc
    except OSError as exc:
        raise DownloadError(
            f"cannot download {url}: cannot read {path} ({exc.strerror}); check the path and its permissions"
        ) from exc
    status = os.fstat(stream.fileno())
    start = offset if offset <= status.st_size else 0
    stream.seek(start)
    validators = Validators(last_modified=str(status.st_mtime_ns))
    return Body(stream, start, status.st_size, timeout_s, validators)


def _describe(reason: BaseException, timeout_s: float) -> str:
    """Say in a few words why a connection failed."""
    causes = list(_causes(reason))
    for cause in causes:
        if isinstance(cause, (TimeoutError, urllib3.exceptions.TimeoutError, requests.Timeout)):
            return f"no answer within {timeout_s:g} s (timed out)"
    for cause in causes:
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(cause, urllib3.exceptions.IncompleteRead):
            return "connection closed mid-transfer"
        if isinstance(cause, urllib3.exceptions.ProtocolError) and "closed" in str(cause).lower():
            return "the server closed the connection without answering"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return _first_line(reason)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _to_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
