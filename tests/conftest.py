"""Shared fixtures: dataset modules and configs in tmp_path, the installed command, a loopback HTTP server."""

from __future__ import annotations

import itertools
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emloop_ds.core.download import retry as retry_rules
from tests.http_server import LoopbackServer

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"

_module_numbers = itertools.count()

WriteDataset = Callable[..., Path]


@pytest.fixture
def workers_import_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the repository on ``sys.path``, so that workers can import modules of ``tests``."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))


@pytest.fixture
def write_dataset(tmp_path: Path) -> WriteDataset:
    """Return a function that writes a dataset module and a config using it; it returns the config path.

    The module gets a name unique in this test session, since imported modules stay cached in
    ``sys.modules``; ``{module}`` in ``config`` stands for that name.
    """

    def write(source: str, config: str = "dataset:\n  class: {module}.Data\n") -> Path:
        module = f"testdata_{next(_module_numbers)}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        config_path = tmp_path / "config.yaml"
        config_path.write_text(textwrap.dedent(config).replace("{module}", module), encoding="utf-8")
        return config_path

    return write


@pytest.fixture(scope="session")
def emloop_command() -> str:
    """Return the path of the installed ``emloop`` command of this environment."""
    beside_python = Path(sys.executable).parent / "emloop"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("emloop")
    if found is None:
        pytest.fail("the emloop command is not installed; run pip install '.[test]' first")
    return found


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
    monkeypatch.setattr(retry_rules, "DEFAULT_RETRY", retry_rules.RetryPolicy(sleep=waits.append))
    return waits
