"""Open the one ``requests.Session`` of a download run: keep-alive connections in a pool sized for the
number of jobs, and urllib3's ``Retry`` for HTTP statuses that may pass (408, 429, 5xx) with Retry-After.

``requests`` also brings what users expect from an HTTP client: credentials from ``~/.netrc``, proxies from
``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` and a CA bundle from ``REQUESTS_CA_BUNDLE``. Import this module
only on the download path: ``requests`` takes ~60 ms to import, which ``--help``, ``info`` and ``stream``
do not pay.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

import requests
import requests.auth
import requests.utils
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from emloop_ds.core.download.progress import FileProgress
from emloop_ds.core.download.retry import RETRY_STATUSES, RetryPolicy
from emloop_ds.core.errors import DownloadCancelledError

if TYPE_CHECKING:
    from types import TracebackType

    from requests import PreparedRequest
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

__all__ = ["USER_AGENT", "RetryWaits", "open_session"]

USER_AGENT = "emloop-ds"


class RetryWaits:
    """Wait before a retry for a run: cancellable, injectable for tests, and told to the file's progress.

    urllib3 retries statuses inside a request, on the thread that asked; ``reporting_to`` names the
    progress of the file that thread is downloading, so the wait is shown next to it.
    """

    def __init__(self, policy: RetryPolicy, cancel: threading.Event) -> None:
        """Wait by ``policy.sleep`` if given, else on ``cancel``."""
        self.policy = policy
        self.cancel = cancel
        self._local = threading.local()

    @contextmanager
    def reporting_to(self, progress: FileProgress) -> Iterator[None]:
        """Send the notes of waits made by this thread to ``progress`` within the block."""
        self._local.progress = progress
        try:
            yield
        finally:
            self._local.progress = None

    def wait(self, reason: str, retry: int, retries: int, delay_s: float) -> None:
        """Note ``reason`` and wait ``delay_s`` before retry number ``retry`` of ``retries``.

        Raises:
            DownloadCancelledError: if the run is cancelled while waiting.
        """
        progress = getattr(self._local, "progress", None)
        if progress is not None:
            progress.note(f"{reason}; retry {retry} of {retries} in {delay_s:g} s")
        if self.policy.sleep is not None:
            self.policy.sleep(delay_s)
        elif self.cancel.wait(delay_s):
            raise DownloadCancelledError("interrupted while waiting to retry")


class StatusRetry(Retry):
    """urllib3's ``Retry`` with our backoff rule (1, 2, 4, 8 s: NOTE [backoff]) and our cancellable wait.

    NOTE [backoff]: urllib3 waits 0 s before the first retry and ``factor * 2 ** (n - 1)`` after that; the
    rule this project documents is 1, 2, 4, 8 s. A server asking (Retry-After) for a longer wait than the
    policy's longest fails the URL at once instead of holding a job for minutes or hours.
    """

    waits: RetryWaits | None = None

    def new(self, **kw: Any) -> Self:
        """Copy the retry state, keeping the run's waits."""
        retry = super().new(**kw)
        retry.waits = self.waits
        return retry

    def get_backoff_time(self) -> float:
        """Return 1, 2, 4, 8... seconds (times the factor) for the 1st, 2nd, 3rd, 4th retry in a row."""
        failures = len(self.history)
        if failures == 0:
            return 0.0
        return float(min(self.backoff_factor * 2 ** (failures - 1), self.backoff_max))

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        """Count a retry; give up at once if the server asks for a wait beyond the longest."""
        if response is not None and self.respect_retry_after_header:
            after_s = self._retry_after_s(response)
            if after_s is not None and after_s > self.backoff_max:
                # with raise_on_status=False, urllib3 hands this response to the caller, which words it
                raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {after_s:g} s"))  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Wait before the next attempt: Retry-After if the server gave it, else the backoff."""
        delay_s = None
        if response is not None and self.respect_retry_after_header:
            delay_s = self._retry_after_s(response)
        if delay_s is None:
            delay_s = self.get_backoff_time()
        reason = f"HTTP {response.status} {response.reason}" if response is not None else "error"
        retries = len(self.history) + (self.status or 0)
        if self.waits is None:
            super().sleep(response)
        else:
            self.waits.wait(reason, len(self.history), retries, delay_s)

    def _retry_after_s(self, response: BaseHTTPResponse) -> float | None:
        try:
            return self.get_retry_after(response)
        except InvalidHeader:
            return None


class _NoAuth(requests.auth.AuthBase):
    """Send a request as it is: the answer of ``~/.netrc`` for a host that has no entry there."""

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        return request


class _RunSession(requests.Session):
    """A session that reads the environment (proxies, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``) and
    ``~/.netrc`` once per host and run, rather than once per request: requests' per-request lookup walks
    all of ``os.environ`` and cost ~1 ms of CPU per file, a third of a small file's whole cost, and the
    ``~/.netrc`` look-up two ``stat`` calls more."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str, bool | None], dict[str, Any]] = {}
        self._environment_lock = threading.Lock()
        self._netrc: dict[tuple[str, str], requests.auth.AuthBase] = {}
        self._prepared: dict[tuple[Any, ...], PreparedRequest] = {}

    def prepare_request(self, request: requests.Request) -> PreparedRequest:
        """Prepare ``request``, with the credentials ``~/.netrc`` has for its host (looked up once).

        A plain GET (no body, parameters or cookies) is prepared once per host and set of headers, and
        copied for each URL with only the URL prepared anew: the full preparation merges the session's
        settings and cookie jars on every call, ~0.1 ms of CPU per file.
        """
        if not isinstance(request.url, str):
            return super().prepare_request(request)
        parts = urllib.parse.urlsplit(request.url)
        host = (parts.scheme, parts.netloc)
        ours = None
        if self.trust_env and not request.auth and not self.auth:
            with self._environment_lock:
                auth = self._netrc.get(host)
            if auth is None:
                found = requests.utils.get_netrc_auth(request.url)
                auth = _NoAuth() if found is None else requests.auth.HTTPBasicAuth(*found)
                with self._environment_lock:
                    self._netrc[host] = auth
            if not isinstance(auth, _NoAuth) or parts.username is None:
                request.auth = ours = auth  # else requests takes the URL's credentials, as without ~/.netrc
        is_plain = (
            request.method == "GET"
            and request.auth is ours  # none, or this host's from ~/.netrc: the template's header holds it
            and not (request.params or request.data or request.json or request.files or request.cookies)
            and not self.cookies  # a server set cookies: each request takes them from the jar
            and not any(request.hooks.values())
        )
        if not is_plain:
            return super().prepare_request(request)
        key = (*host, tuple(sorted(request.headers.items())))
        with self._environment_lock:
            template = self._prepared.get(key)
        if template is None:
            template = super().prepare_request(request)
            with self._environment_lock:
                self._prepared[key] = template
        prepared = template.copy()
        prepared.prepare_url(request.url, None)
        return prepared

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        """Return requests' settings for ``url``, computed once per scheme, host and port."""
        if proxies or verify is not None or cert is not None:
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.netloc, stream)
        with self._environment_lock:
            settings = self._environment.get(key)
        if settings is None:
            settings = dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
            with self._environment_lock:
                self._environment[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}


def open_session(jobs: int, waits: RetryWaits) -> requests.Session:
    """Return a session whose pool keeps up to ``jobs`` connections per host alive between files."""
    retry = StatusRetry(
        total=None,
        connect=0,  # connection failures are ours to retry: NOTE [fail fast] in response.py
        read=0,
        other=0,
        redirect=10,
        status=waits.policy.attempts - 1,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        backoff_factor=waits.policy.backoff_s,
        backoff_max=waits.policy.max_backoff_s,
        raise_on_status=False,  # the last answer comes back to us and is worded as our error
        respect_retry_after_header=True,
    )
    retry.waits = waits
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=jobs, max_retries=retry)
    session = _RunSession()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # identity: byte offsets (Range) and Content-Length count the file's own bytes, not a compressed form
    session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    return session
