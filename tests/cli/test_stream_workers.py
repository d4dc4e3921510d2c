"""Test ``emloop dataset stream --workers N [--unordered]``: the summary, errors and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from emloop_ds.cli.main import cli
from tests.process_table import shared_memory_of, wait_for_exit

EMLOOP = Path(sys.executable).parent / "emloop"
IRIS_CONFIG = Path(__file__).parents[2] / "examples" / "iris" / "config.yaml"
DEADLINE_S = 30.0

DATASET_MODULE = """
import os
import sys

import numpy as np

from emloop_ds import BaseDataset, Shard


class ShardedDataset(BaseDataset):
    def _configure_dataset(self, output_dir, batches=10, endless=False):
        self.batches, self.endless = batches, endless

    def train_stream(self, shard=Shard(0, 1)):
        n = shard.index
        while self.endless or n < self.batches:
            if n == shard.index + shard.count:
                sys.stderr.write(f"streaming {os.getpid()}\\n")  # one write, whole
            yield {"images": np.full((2, 64, 64), n, np.float32), "labels": [n, n]}
            n += shard.count

    def plain_stream(self):
        yield {"labels": [0]}
"""


def write_dataset(folder: Path, **options: object) -> Path:
    """Write the sharded dataset module and a config using it with ``options``; return the config path."""
    (folder / "sharded_stream_dataset.py").write_text(DATASET_MODULE, encoding="utf-8")
    config = folder / "config.yaml"
    lines = [f"  {key}: {json.dumps(value)}" for key, value in options.items()]
    config.write_text(
        "\n".join(["dataset:", "  class: sharded_stream_dataset.ShardedDataset", *lines]) + "\n"
    )
    return config


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["dataset", "stream", *map(str, args)])


def test_the_summary_always_says_workers_and_order(tmp_path: Path) -> None:
    config = write_dataset(tmp_path)
    in_process = json.loads(run(config, "--json").stdout)
    assert (in_process["workers"], in_process["ordered"], in_process["batches"]) == (0, True, 10)

    result = run(config, "--workers", "2", "--unordered", "--epochs", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["workers"], summary["ordered"], summary["buffer_size"]) == (2, False, 2)
    assert (summary["batches"], summary["examples"]) == (20, 40)

    table = run(config, "--workers", "2", "--buffer", "3", "--eager")
    assert table.exit_code == 0, table.output
    assert "2 (ordered)" in table.stdout
    assert "3 batches in flight per worker" in table.stdout


def test_the_iris_example_streams_on_workers() -> None:
    result = run(IRIS_CONFIG, "--workers", "2", "--epochs", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["examples"] == 3 * 120


def test_unordered_without_workers_is_a_usage_error(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path), "--unordered")
    assert result.exit_code == 2
    assert "--unordered needs worker processes" in result.stderr


def test_a_non_shardable_stream_on_workers_is_a_config_error(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path), "--stream", "plain", "--workers", "2")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "stream `plain` (ShardedDataset.plain_stream) is not shardable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def _sigint_not_ignored() -> Iterator[None]:
    """Let a child receive SIGINT even when the test runner was started in the background."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def read_until(stream: int, count: int, marker: bytes) -> bytes:
    """Read ``stream`` until ``count`` whole lines ``<marker> <number>`` came; return what was read."""
    seen = b""
    while len(re.findall(re.escape(marker) + rb" \d+\n", seen)) < count:
        chunk = os.read(stream, 4096)
        assert chunk, f"the process ended before writing {marker!r} {count} times: {seen!r}"
        seen += chunk
    return seen


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("_sigint_not_ignored")
def test_ctrl_c_on_workers_exits_130_promptly_leaving_nothing_behind(tmp_path: Path) -> None:
    config = write_dataset(tmp_path, endless=True)
    # Its own process group, which Ctrl-C at a terminal signals as a whole: the reader and its workers.
    process = subprocess.Popen(
        [EMLOOP, "dataset", "stream", config, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        seen = read_until(process.stderr.fileno(), 2, b"streaming")  # both workers are producing
        family = [process.pid, *[int(pid) for pid in re.findall(rb"streaming (\d+)\n", seen)]]
        mapped = [shared_memory_of(pid) for pid in family]
        os.killpg(process.pid, signal.SIGINT)
        interrupted = time.perf_counter()
        stdout, stderr = process.communicate(timeout=DEADLINE_S)  # EOF: the workers closed stderr too
        waited_s = time.perf_counter() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert len(set(family)) == 3, seen
    assert process.returncode == 130
    assert waited_s < 10  # the issue asks for promptly; the margin is for a CPU shared with other tests
    assert b"train stream (interrupted by Ctrl-C)" in stdout  # the summary of what was read
    assert b"2 (ordered)" in stdout
    assert (seen + stderr).decode().rstrip().endswith("interrupted")
    assert b"Traceback" not in seen + stderr
    assert wait_for_exit(family) == []
    assert all(named == [] for named, _ in mapped)  # no segment in /dev/shm, so none left there
    assert all(slots for _, slots in mapped[1:])  # the workers' batches went through memfd slots
