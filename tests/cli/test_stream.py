"""Test ``emloop dataset stream``: options, the summary, JSON, errors, exit codes and Ctrl-C."""

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
from typing import Any

import pytest
from click.testing import CliRunner, Result

from emloop_ds.cli import stream as stream_command
from emloop_ds.cli.main import cli

IRIS_CONFIG = Path(__file__).parents[2] / "examples" / "iris" / "config.yaml"
EMLOOP = Path(sys.executable).parent / "emloop"

DATASET_MODULE = """
import sys
import time

import numpy as np

from emloop_ds import BaseDataset


class StreamDataset(BaseDataset):
    def _configure_dataset(self, output_dir, batches=4, batch_size=2, fail_at=-1, endless=False):
        self.batches, self.batch_size, self.fail_at, self.endless = batches, batch_size, fail_at, endless

    def train_stream(self):
        n = 0
        while self.endless or n < self.batches:
            if n == self.fail_at:
                raise ValueError(f"record {n} is corrupt")
            if n == 1:
                print("streaming", file=sys.stderr, flush=True)
            yield {"images": np.zeros((self.batch_size, 2, 2), np.float32), "labels": [0] * self.batch_size}
            n += 1
            if self.endless:
                time.sleep(0.01)  # a slow reader; Ctrl-C must not wait for the stream to end

    def valid_stream(self):
        return []
"""


def write_dataset(folder: Path, **options: Any) -> Path:
    """Write the test dataset module and a config using it with ``options``; return the config's path."""
    (folder / "stream_dataset.py").write_text(DATASET_MODULE, encoding="utf-8")
    config = folder / "config.yaml"
    lines = [f"  {key}: {json.dumps(value)}" for key, value in options.items()]
    config.write_text("\n".join(["dataset:", "  class: stream_dataset.StreamDataset", *lines]) + "\n")
    return config


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["dataset", "stream", *map(str, args)])


def test_stream_prints_a_summary_and_no_bar_where_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path), "--epochs", "2")
    assert result.exit_code == 0, result.output
    for phrase in ("train stream", "batches", "examples/s", "MB/s", "time to first batch", "p95"):
        assert phrase in result.stdout
    assert re.search(r"│ batches +│ +8 │", result.stdout)
    assert "\r" not in result.stderr  # progress lines, not a bar: tests/cli/test_stream_progress.py
    assert "interrupted" not in result.stdout
    assert "hint" not in result.stderr


def test_json_summary_has_the_documented_keys(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["stream"] == "train"
    assert (summary["epochs"], summary["batches"], summary["examples"]) == (1, 4, 8)
    assert summary["bytes"] == 4 * 2 * 2 * 2 * 4
    assert 0 < summary["first_batch_seconds"] <= summary["seconds"]
    assert summary["batches_per_second"] == pytest.approx(4 / summary["seconds"])
    assert summary["examples_per_second"] == pytest.approx(8 / summary["seconds"])
    assert summary["wait_median_seconds"] <= summary["wait_p95_seconds"] <= summary["wait_max_seconds"]
    assert summary["interrupted"] is False


@pytest.mark.parametrize("buffer", [[], ["--buffer", "3"], ["--buffer", "3", "--eager"]])
def test_epochs_of_a_fixed_size_are_read_in_every_mode(tmp_path: Path, buffer: list[str]) -> None:
    result = run(write_dataset(tmp_path), "--epochs", "3", "--epoch-size", "5", *buffer, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["batches"], summary["examples"], summary["epoch_size"]) == (15, 30, 5)
    assert summary["buffer_size"] == (3 if buffer else 0)
    assert summary["eager"] == ("--eager" in buffer)


def test_overrides_and_stream_choice_reach_the_dataset(tmp_path: Path) -> None:
    config = write_dataset(tmp_path)
    result = run(config, "dataset.batches=7", "dataset.batch_size=3", "--json")
    assert (json.loads(result.stdout)["batches"], json.loads(result.stdout)["examples"]) == (7, 21)
    result = run(config, "--stream", "valid", "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["stream"], json.loads(result.stdout)["batches"]) == ("valid", 0)


def test_the_iris_example_streams() -> None:
    result = run(IRIS_CONFIG, "--stream", "test", "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["batches"], json.loads(result.stdout)["examples"]) == (2, 30)


def test_a_missing_stream_is_a_config_error_listing_the_streams(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path), "--stream", "test")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "error: dataset StreamDataset has no stream `test`; available: train, valid\n"


def test_eager_without_a_buffer_is_a_usage_error(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path), "--eager")
    assert result.exit_code == 2
    assert "--eager needs a buffer" in result.stderr


@pytest.mark.parametrize("buffer", [[], ["--buffer", "2"]])
def test_a_failing_stream_exits_1_with_the_dataset_message(tmp_path: Path, buffer: list[str]) -> None:
    config = write_dataset(tmp_path, fail_at=2)
    result = run(config, *buffer)
    assert result.exit_code == 1
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("error: stream `train` failed")
    assert "ValueError: record 2 is corrupt" in last_line
    assert "Traceback" not in result.stderr
    verbose = run(config, *buffer, "--verbose")
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.stderr
    assert 'raise ValueError(f"record {n} is corrupt")' in verbose.stderr


def test_an_empty_stream_cannot_fill_a_fixed_epoch(tmp_path: Path) -> None:
    result = run(write_dataset(tmp_path, batches=0), "--epoch-size", "3")
    assert result.exit_code == 1
    assert "yielded no batches, so an epoch of 3 batches cannot be filled" in result.stderr


def test_a_first_epoch_that_does_not_end_in_time_gets_one_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_command, "ENDLESS_HINT_AFTER_S", 0.0)
    config = write_dataset(tmp_path, batches=6)
    result = run(config, "--epochs", "2", "--json")
    assert result.exit_code == 0, result.output
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    assert hints == [
        "hint: the first epoch of stream `train` has not ended after 0 s; the stream may be endless: "
        "--epoch-size N reads epochs of N batches"
    ]
    assert json.loads(result.stdout)["batches"] == 12
    bounded = run(config, "--epoch-size", "3", "--json")
    assert bounded.exit_code == 0, bounded.output
    assert "hint:" not in bounded.stderr


# --- the installed command in a subprocess --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "arguments", "exit_code", "phrase"),
    [
        ({}, ["--json"], 0, ""),
        ({"fail_at": 1}, ["--buffer", "2"], 1, "error: stream `train` failed"),
        ({}, ["--stream", "nope"], 2, "error: dataset StreamDataset has no stream `nope`"),
    ],
)
def test_the_emloop_command_exits_with_the_documented_codes(
    tmp_path: Path, options: dict[str, Any], arguments: list[str], exit_code: int, phrase: str
) -> None:
    config = write_dataset(tmp_path, **options)
    done = subprocess.run(
        [EMLOOP, "dataset", "stream", config, *arguments], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == exit_code, done.stderr
    assert phrase in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def _sigint_not_ignored() -> Iterator[None]:
    """Let child processes receive Ctrl-C even when this run started with SIGINT ignored (in the background).

    An ignored signal stays ignored across exec, and Python then installs no KeyboardInterrupt handler.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("_sigint_not_ignored")
@pytest.mark.parametrize("buffer", [[], ["--buffer", "4"], ["--buffer", "4", "--eager"]])
def test_ctrl_c_prints_the_summary_so_far_and_exits_130(tmp_path: Path, buffer: list[str]) -> None:
    config = write_dataset(tmp_path, endless=True)
    stdout, stderr, returncode = interrupt_after_two_batches([EMLOOP, "dataset", "stream", config, *buffer])
    assert returncode == 130
    assert "train stream (interrupted by Ctrl-C)" in stdout
    batches = re.search(r"│ batches +│ +(\d+) │", stdout)
    assert batches is not None
    assert int(batches.group(1)) >= (0 if "--eager" in buffer else 1)  # the reader had the first batch
    assert stderr.rstrip().endswith("interrupted")
    assert "Traceback" not in stderr


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("_sigint_not_ignored")
def test_ctrl_c_with_json_prints_the_summary_with_interrupted_true(tmp_path: Path) -> None:
    config = write_dataset(tmp_path, endless=True, batch_size=3)
    stdout, stderr, returncode = interrupt_after_two_batches(
        [EMLOOP, "dataset", "stream", config, "--buffer", "2", "--json"]
    )
    assert returncode == 130
    summary = json.loads(stdout)
    assert summary["interrupted"] is True
    assert summary["batches"] >= 1
    assert summary["examples"] == 3 * summary["batches"]
    assert stderr.rstrip().endswith("interrupted")


def interrupt_after_two_batches(command: list[str | Path]) -> tuple[str, str, int]:
    """Run ``command``, press Ctrl-C once the dataset has made its second batch; return its outcome."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = read_until(process, b"streaming")  # the dataset announces its second batch
        process.send_signal(signal.SIGINT)
        interrupted = time.perf_counter()
        stdout, stderr = process.communicate(timeout=30)
        assert time.perf_counter() - interrupted < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return stdout.decode(), (seen + stderr).decode(), process.returncode


def read_until(process: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """Read the process's stderr until ``marker`` shows up; return what was read."""
    assert process.stderr is not None
    seen = b""
    while marker not in seen:
        chunk = os.read(process.stderr.fileno(), 4096)
        assert chunk, f"the process ended before writing {marker!r}: {seen!r}"
        seen += chunk
    return seen


def test_sources_of_unequal_length_exit_1_with_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "unequal_dataset.py").write_text(
        "from emloop_ds import BaseDataset\n\n"
        "class Data(BaseDataset):\n"
        "    def _configure_dataset(self, output_dir):\n"
        "        pass\n\n"
        "    def train_stream(self):\n"
        "        yield {'images': [[0.0]] * 4, 'labels': [1, 2, 3]}\n",
        encoding="utf-8",
    )
    config = tmp_path / "config.yaml"
    config.write_text("dataset:\n  class: unequal_dataset.Data\n", encoding="utf-8")
    result = run(config)
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: stream `train` batch 1 has sources of unequal length (`images` 4, `labels` 3); "
        "make every source of a batch hold one value per example"
    ]
