"""Open a URL (http, https or file) at a byte offset and say which bytes the answer holds.

Failures that may pass (connection errors, timeouts, cut transfers, HTTP 408, 429 and 5xx) become
``RetryableError``; those that will not (404, 403, a missing local file, a bad certificate) become
``DownloadError``.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from emloop_ds.core.errors import DownloadError

__all__ = ["USER_AGENT", "Body", "RestartError", "RetryableError", "open_body"]

USER_AGENT = "emloop-ds"

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
_RETRYABLE_STATUSES = {408, 429}


class RetryableError(Exception):
    """A transfer failed for a reason that may pass; ``reason`` is one short phrase for messages."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        """Record the reason and the wait the server asked for (Retry-After), if any."""
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class RestartError(Exception):
    """The bytes already downloaded cannot be continued; empty the part file and start over at once."""


class _Readable(Protocol):
    def readinto(self, buffer: bytearray, /) -> int: ...

    def close(self) -> None: ...


class Body:
    """The bytes of a URL from ``start`` on, as one answer delivers them; a context manager."""

    def __init__(self, stream: _Readable, start: int, total_bytes: int | None, timeout_s: float) -> None:
        """Wrap ``stream``; ``total_bytes`` is the whole file's size, ``None`` if unknown."""
        self.start = start
        self.total_bytes = total_bytes
        self._stream = stream
        self._timeout_s = timeout_s

    def readinto(self, buffer: bytearray) -> int:
        """Read the next bytes into ``buffer``; return 0 at the end.

        Raises:
            RetryableError: if the connection stalls, is reset or is cut.
        """
        try:
            return self._stream.readinto(buffer)
        except TimeoutError as exc:
            raise RetryableError(f"no data for {self._timeout_s:g} s (stalled transfer)") from exc
        except (http.client.HTTPException, OSError) as exc:
            raise RetryableError(_describe(exc, self._timeout_s)) from exc

    def close(self) -> None:
        """Close the connection or file."""
        self._stream.close()

    def __enter__(self) -> Body:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_body(url: str, offset: int, timeout_s: float) -> Body | None:
    """Ask for the bytes of ``url`` from ``offset`` on; ``None`` means the server says there are none left.

    The body may start elsewhere (at 0 if the server ignores Range); the caller checks ``Body.start``.

    Raises:
        RetryableError: for failures that may pass.
        RestartError: if the server cannot send bytes from ``offset`` on (HTTP 416).
        DownloadError: for failures that will not pass.
    """
    if urllib.parse.urlsplit(url).scheme.lower() == "file":
        return _open_file(url, offset, timeout_s)
    return _open_http(url, offset, timeout_s)


def _open_http(url: str, offset: int, timeout_s: float) -> Body | None:
    headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and _is_whole(exc.headers, offset):
                return None
            raise _status_error(url, exc.code, str(exc.reason), exc.headers, offset) from exc
    except urllib.error.URLError as exc:
        raise _network_error(url, exc.reason, timeout_s) from exc
    except (http.client.HTTPException, OSError) as exc:
        raise _network_error(url, exc, timeout_s) from exc
    try:
        start, total_bytes = _body_range(url, response)
    except BaseException:
        response.close()
        raise
    return Body(response, start, total_bytes, timeout_s)


def _body_range(url: str, response: Any) -> tuple[int, int | None]:
    """Return where the body starts and the whole file's size (``None`` if unknown)."""
    length = _to_int(response.headers.get("Content-Length"))
    if response.status == 200:
        return 0, length
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None:
            raise RetryableError("the server sent part of the file without a valid Content-Range")
        start = int(match[1])
        if match[3] != "*":
            return start, int(match[3])
        return start, None if length is None else start + length
    raise DownloadError(
        f"cannot download {url}: unexpected answer HTTP {response.status} {response.reason}; check the URL"
    )


def _is_whole(headers: Message, offset: int) -> bool:
    """Tell whether a 416 answer says the file has exactly the ``offset`` bytes already downloaded."""
    match = _UNSATISFIED_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    return offset > 0 and match is not None and int(match[1]) == offset


def _status_error(url: str, code: int, reason: str, headers: Message, offset: int) -> Exception:
    """Return the exception for an HTTP error status."""
    if code == 416 and offset:
        return RestartError(f"the server cannot send bytes from {offset} on (HTTP 416)")
    if code in _RETRYABLE_STATUSES or 500 <= code < 600:
        return RetryableError(f"HTTP {code} {reason}", _retry_after_s(headers.get("Retry-After")))
    hint = "check the URL and whether it needs a login" if code in (401, 403) else "check the URL"
    return DownloadError(f"cannot download {url}: HTTP {code} {reason}; {hint}")


def _open_file(url: str, offset: int, timeout_s: float) -> Body:
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    try:
        stream = path.open("rb")
    except FileNotFoundError as exc:
        raise DownloadError(f"cannot download {url}: {path} does not exist; check the path") from exc
    except OSError as exc:
        raise DownloadError(
            f"cannot download {url}: cannot read {path} ({exc.strerror}); check the path and its permissions"
        ) from exc
    size = os.fstat(stream.fileno()).st_size
    start = offset if offset <= size else 0
    stream.seek(start)
    return Body(stream, start, size, timeout_s)


def _network_error(url: str, reason: object, timeout_s: float) -> Exception:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return DownloadError(
            f"cannot download {url}: certificate verification failed ({reason.verify_message}); "
            "check the URL and the system's CA certificates"
        )
    return RetryableError(_describe(reason, timeout_s))


def _describe(reason: object, timeout_s: float) -> str:
    """Say in a few words why a connection failed."""
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s (timed out)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(reason, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason.strerror})"
    if isinstance(reason, http.client.IncompleteRead):
        return "connection closed mid-transfer"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    text = str(reason).strip()
    return text.splitlines()[0] if text else type(reason).__name__


def _retry_after_s(value: str | None) -> float | None:
    """Read Retry-After, either seconds or an HTTP date; ``None`` if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _to_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
