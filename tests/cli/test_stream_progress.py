"""The progress of `emloop dataset stream`: a tqdm bar at a terminal, a line every 5 s elsewhere (logs)."""

from __future__ import annotations

import functools
import io
import itertools
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from emloop_ds.cli import stream_progress
from emloop_ds.cli.main import cli
from emloop_ds.cli.stream_progress import BatchLines
from tests.terminal import run_at_a_terminal

WriteDataset = Callable[..., Path]

DATASET = """
from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, batches=12, **kwargs):
        self.batches = batches

    def train_stream(self):
        for index in range(self.batches):
            yield {"x": [index, index]}
"""


def ticks() -> Callable[[], float]:
    """Return a clock that is one second later at each reading."""
    return functools.partial(next, itertools.count(0.0, 1.0))


def test_lines_come_at_most_every_interval_with_rate_and_eta() -> None:
    out = io.StringIO()
    lines = BatchLines("train", 12, out, interval_s=5.0, clock=ticks())
    for _ in range(12):
        lines.advance()
    assert out.getvalue() == (
        "progress: train 5 of 12 batches, 1.0 batches/s, ETA 7s\n"
        "progress: train 10 of 12 batches, 1.0 batches/s, ETA 2s\n"
    )


def test_lines_without_a_total_have_no_eta_and_notes_print_at_once() -> None:
    out = io.StringIO()
    clock = iter([0.0, 1.0, 2.0, 7.5, 8.0])
    lines = BatchLines("valid", None, out, clock=functools.partial(next, clock))
    lines.advance()
    lines.note("hint: the stream may be endless")
    lines.advance()
    lines.advance()
    lines.advance()
    assert out.getvalue() == "hint: the stream may be endless\nprogress: valid 3 batches, 0.4 batches/s\n"


def test_a_read_shorter_than_the_interval_prints_no_line() -> None:
    out = io.StringIO()
    lines = BatchLines("train", 1000, out, clock=functools.partial(next, itertools.count(0.0, 0.001)))
    for _ in range(1000):
        lines.advance()
    assert out.getvalue() == ""


def test_stream_writes_lines_not_a_bar_where_stderr_is_not_a_terminal(
    write_dataset: WriteDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = stream_progress.open_batch_progress
    monkeypatch.setattr(stream_progress, "open_batch_progress", functools.partial(opened, clock=ticks()))
    config = write_dataset(DATASET)
    result = CliRunner().invoke(cli, ["dataset", "stream", str(config), "--epoch-size", "6", "--epochs", "2"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        "progress: train 5 of 12 batches, 1.0 batches/s, ETA 7s\n"
        "progress: train 10 of 12 batches, 1.0 batches/s, ETA 2s\n"
    )
    assert "train stream" in result.stdout


def test_the_installed_command_writes_no_carriage_returns_into_a_pipe(
    write_dataset: WriteDataset, emloop_command: str
) -> None:
    config = write_dataset(DATASET)
    done = subprocess.run(
        [emloop_command, "dataset", "stream", str(config), "dataset.batches=500", "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    assert "batches/s" not in done.stderr  # the read takes well under 5 s: no line, only the summary
    assert "train stream" in done.stdout


def test_the_installed_command_shows_tqdms_bar_at_a_terminal(
    write_dataset: WriteDataset, emloop_command: str
) -> None:
    config = write_dataset(DATASET)
    returncode, shown, stdout = run_at_a_terminal(  # stderr on a terminal of 24 rows, 100 columns
        [emloop_command, "dataset", "stream", str(config), "--epoch-size", "6", "--epochs", "2"],
        terminal="stderr",
        columns=100,
    )
    assert returncode == 0, shown.decode(errors="replace")
    assert b"\r" in shown
    assert b"12/12" in shown
    assert b"train stream" in stdout
