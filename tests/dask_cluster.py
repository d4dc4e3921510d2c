"""A real Dask cluster for tests: `dask scheduler` and `dask worker` as separate processes on 127.0.0.1.

They run from an empty folder, so the workers cannot import the tests' dataset modules unless the engine
ships them. Readiness is awaited by a client, and the workers stop before the scheduler (faster).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0


class DaskTestCluster:
    """Hold the scheduler's address and a client of the test's own; ``worker_count`` workers."""

    def __init__(self, address: str, client: Any, worker_count: int) -> None:
        self.address = address
        self.client = client
        self.worker_count = worker_count

    def wait_for_workers(self) -> None:
        """Wait until all workers are there again (a killed one is restarted by its nanny)."""
        self.client.wait_for_workers(self.worker_count, timeout=_READY_TIMEOUT_S)


def _dask_command() -> str:
    command = Path(sys.executable).parent / "dask"
    if not command.exists():
        pytest.skip("the `dask` command is not installed; pip install '.[test]' installs it")
    return str(command)


@contextmanager
def run_dask_cluster(folder: Path, worker_count: int = 2) -> Iterator[DaskTestCluster]:
    """Start a scheduler and ``worker_count`` workers with cwd ``folder``; stop them afterwards."""
    distributed = pytest.importorskip("distributed")
    dask = _dask_command()
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
         "--scheduler-file", str(scheduler_file)],
        cwd=folder, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: subprocess.Popen[bytes] | None = None
    client = None
    try:
        client = distributed.Client(
            scheduler_file=str(scheduler_file), timeout=_READY_TIMEOUT_S, set_as_default=False
        )
        address = str(client.scheduler.address)
        workers = subprocess.Popen(
            [dask, "worker", address, "--nworkers", str(worker_count), "--nthreads", "1",
             "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0",
             "--local-directory", str(folder / "workers")],
            cwd=folder, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        cluster = DaskTestCluster(address, client, worker_count)
        cluster.wait_for_workers()
        yield cluster
    finally:
        if client is not None:
            client.close()
        for process in (workers, scheduler):  # workers first: stopping both at once takes seconds
            if process is not None:
                _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` with SIGTERM, then SIGKILL if it takes too long."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
