"""Fixtures shared by the tests: a scriptable loopback HTTP server and retries that do not wait."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emloop_ds.core import download
from tests.http_server import LoopbackServer

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """Run a loopback HTTP server whose answers the test scripts with ``add(path, data, *faults)``."""
    for name in _PROXY_VARIABLES:  # the tests talk to 127.0.0.1 only, never through a proxy
        monkeypatch.delenv(name, raising=False)
    server = LoopbackServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff waits of downloads instead of waiting; returns the list of waits."""
    waits: list[float] = []
    monkeypatch.setattr(download, "DEFAULT_RETRY", download.RetryPolicy(sleep=waits.append))
    return waits
