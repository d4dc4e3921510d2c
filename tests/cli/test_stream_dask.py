"""Test ``emloop dataset stream --workers N --engine dask``: summary, usage errors, timeout and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from emloop_ds.cli.main import cli
from tests.cli.test_stream_workers import (  # noqa: F401 (a fixture)
    EMLOOP,
    IRIS_CONFIG,
    _sigint_not_ignored,
    read_until,
    write_dataset,
)
from tests.dask_cluster import DaskTestCluster, run_dask_cluster
from tests.process_table import descendants, wait_for_exit

pytest.importorskip("distributed")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["dataset", "stream", *map(str, args)])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskTestCluster]:
    with run_dask_cluster(tmp_path_factory.mktemp("dask-cli-cluster")) as running:
        yield running


def test_the_summary_names_the_engine_and_the_scheduler(cluster: DaskTestCluster, tmp_path: Path) -> None:
    cluster.wait_for_workers()
    config = write_dataset(tmp_path)
    result = run(config, "--workers", "2", "--engine", "dask", "--scheduler", cluster.address, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["engine"], summary["scheduler"], summary["batches"]) == ("dask", cluster.address, 10)
    assert json.loads(run(config, "--json").stdout)["engine"] == "in-process"
    on_processes = json.loads(run(config, "--workers", "2", "--json").stdout)
    assert on_processes["engine"] == "processes"
    assert "scheduler" not in on_processes
    table = run(IRIS_CONFIG, "--workers", "2", "--engine", "dask", "--scheduler", cluster.address)
    assert table.exit_code == 0, table.output
    assert re.search(r"engine\s+│\s+dask", table.stdout)
    assert cluster.address in table.stdout


def test_a_dask_run_resumes_from_its_state_file(cluster: DaskTestCluster, tmp_path: Path) -> None:
    cluster.wait_for_workers()
    config, state = write_dataset(tmp_path), tmp_path / "run.state"
    dask = ["--workers", "2", "--engine", "dask", "--scheduler", cluster.address, "--epoch-size", "3"]
    first = run(config, *dask, "--epochs", "1", "--state", state, "--json")
    assert first.exit_code == 0, first.output
    resumed = run(config, *dask, "--epochs", "4", "--state", state, "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert (summary["resumed_at"], summary["batches"]) == ({"epoch": 1, "batch": 0}, 9)
    whole = json.loads(run(config, "--epoch-size", "3", "--epochs", "4", "--json").stdout)
    assert json.loads(first.stdout)["examples"] + summary["examples"] == whole["examples"]


def test_dask_engine_without_workers_is_a_usage_error(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path), "--engine", "dask")
    assert result.exit_code == 2
    assert "--engine dask runs shards of the stream: add --workers N" in result.stderr
    result = run(write_dataset(tmp_path), "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 2
    assert "add --engine dask" in result.stderr


def test_missing_dask_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = run(write_dataset(tmp_path), "--workers", "2", "--engine", "dask")
    assert result.exit_code == 2
    assert "pip install 'emloop-ds[dask]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_scheduler_is_one_error_line_within_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    result = subprocess.run(
        [EMLOOP, "dataset", "stream", write_dataset(tmp_path), "--workers", "2", "--engine", "dask",
         "--scheduler", address, "--timeout", "1.5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - started < 1.5 + 8  # start-up of the command and of Dask's import included
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"cannot reach the Dask scheduler at {address} within 1.5 s" in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("_sigint_not_ignored")
def test_ctrl_c_exits_130_and_leaves_no_cluster_process(tmp_path: Path) -> None:
    config = write_dataset(tmp_path, endless=True)
    # Its own process group, which Ctrl-C at a terminal signals as a whole: the reader and its cluster.
    process = subprocess.Popen(
        [EMLOOP, "dataset", "stream", config, "--workers", "2", "--engine", "dask"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen = read_until(process.stderr.fileno(), 2, b"streaming")  # both shards are producing
        family = descendants(process.pid)
        os.killpg(process.pid, signal.SIGINT)
        interrupted = time.perf_counter()
        stdout, stderr = process.communicate(timeout=60)
        waited_s = time.perf_counter() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert len(family) >= 2  # the LocalCluster's worker processes
    assert process.returncode == 130
    assert waited_s < 15  # promptly: closing a LocalCluster takes about a second; the CPU is shared
    assert b"train stream (interrupted by Ctrl-C)" in stdout
    assert b"Traceback" not in seen + stderr
    assert wait_for_exit(family) == []
