"""Test ``emloop dataset stream --state``: resume from the file, atomic writes, SIGTERM, refused states."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from emloop_ds.cli.main import cli

EMLOOP = Path(sys.executable).parent / "emloop"
LENGTH = 10

# Records each batch it makes in made.log. While a file `<event>` exists in the folder, it does that event
# at batch `at` of pass `at_pass`: `block` waits on a FIFO that nobody opens for writing (until a signal),
# `sigterm` sends this process SIGTERM, `interrupt` raises KeyboardInterrupt right after the pass's last
# batch (Ctrl-C before the end of the pass was read). `interrupt` happens once: it removes its file.
DATASET_MODULE = """
import os
import signal
import sys
from pathlib import Path

from emloop_ds import BaseDataset, Shard


class Data(BaseDataset):
    def _configure_dataset(self, output_dir, folder, length=10, at=-1, at_pass=1):
        self.folder, self.length, self.at, self.at_pass = Path(folder), length, at, at_pass

    def train_stream(self, shard=Shard(0, 1)):
        for number in shard.select(range(self.length)):
            if number == self.at and shard.epoch == self.at_pass:
                if (self.folder / "block").exists():
                    print("blocked", file=sys.stderr, flush=True)
                    open(self.folder / "fifo").close()
                if (self.folder / "sigterm").exists():
                    os.kill(os.getpid(), signal.SIGTERM)
            with open(self.folder / "made.log", "a") as log:
                log.write(f"{shard.epoch} {number}\\n")
            yield {"number": [number], "pass": [shard.epoch]}
        if shard.epoch == self.at_pass and (self.folder / "interrupt").exists():
            (self.folder / "interrupt").unlink()
            raise KeyboardInterrupt

    def valid_stream(self, shard=Shard(0, 1)):
        return self.train_stream(shard)
"""


def write_dataset(folder: Path, **options: Any) -> Path:
    """Write the dataset module and a config using it with ``options``; return the config's path."""
    (folder / "state_dataset.py").write_text(DATASET_MODULE, encoding="utf-8")
    config = folder / "config.yaml"
    lines = [f"  {key}: {json.dumps(value)}" for key, value in {"folder": str(folder), **options}.items()]
    config.write_text("\n".join(["dataset:", "  class: state_dataset.Data", *lines]) + "\n")
    return config


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["dataset", "stream", *map(str, args), "--json"])


def made(folder: Path) -> list[str]:
    """Return the batches the dataset made so far, as 'pass number' lines; forget them."""
    log = folder / "made.log"
    lines = log.read_text().split("\n")[:-1] if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def test_a_run_writes_its_state_and_a_longer_run_resumes_after_it(tmp_path: Path) -> None:
    config, state = write_dataset(tmp_path), tmp_path / "run.state"
    first = run(config, "--epoch-size", "4", "--epochs", "2", "--state", state)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["resumed_at"] is None
    assert json.loads(state.read_text())["epoch"] == 2
    second = run(config, "--epoch-size", "4", "--epochs", "5", "--state", state)
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout)
    assert summary["resumed_at"] == {"epoch": 2, "batch": 0}
    assert (summary["epochs"], summary["batches"]) == (5, 12)
    assert made(tmp_path) == [
        f"{p} {n}" for p, n in [(0, n) for n in range(10)] + [(1, n) for n in range(10)]
    ]
    # A run whose epochs were all read reads nothing more.
    third = run(config, "--epoch-size", "4", "--epochs", "5", "--state", state)
    assert json.loads(third.stdout)["batches"] == 0
    assert third.exit_code == 0


def test_the_table_says_where_the_run_resumed(tmp_path: Path) -> None:
    config, state = write_dataset(tmp_path), tmp_path / "run.state"
    run(config, "--epoch-size", "3", "--state", state)
    result = CliRunner().invoke(cli, ["dataset", "stream", str(config), "--epoch-size", "3", "--epochs", "2",
                                      "--state", str(state)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "resumed at" in result.stdout
    assert "epoch 1, batch 0" in result.stdout


def test_state_every_writes_the_state_during_the_run_so_a_killed_run_resumes(tmp_path: Path) -> None:
    config, state = write_dataset(tmp_path, at=7, at_pass=0), tmp_path / "run.state"
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "block").touch()  # the run blocks while making batch 7, 7 batches delivered
    process = subprocess.Popen(
        [EMLOOP, "dataset", "stream", config, "--state", state, "--state-every", "3", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for_line(process, "blocked")
        assert json.loads(state.read_text())["batch"] == 6  # written after batches 3 and 6
    finally:
        process.kill()  # SIGKILL: no state is written at the end
        process.communicate(timeout=30)
    (tmp_path / "block").unlink()
    resumed = run(config, "--state", state)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["batches"] == LENGTH - 6
    assert made(tmp_path) == [f"0 {n}" for n in range(7)] + [f"0 {n}" for n in range(6, LENGTH)]


def _wait_for_line(process: subprocess.Popen[str], marker: str) -> list[str]:
    """Read the process's stderr line by line until one contains ``marker``; return the lines read."""
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if marker in line:
            return lines
    pytest.fail(f"the process ended before writing {marker!r}: {''.join(lines)}")


def test_a_resume_after_the_last_batch_of_a_pass_ends_where_a_whole_run_would(tmp_path: Path) -> None:
    config, state = write_dataset(tmp_path, at_pass=1), tmp_path / "run.state"
    (tmp_path / "interrupt").touch()  # Ctrl-C after the last batch of pass 1, before its end was read
    first = run(config, "--epochs", "3", "--state", state)
    assert first.exit_code == 130, first.output
    assert json.loads(first.stdout)["batches"] == 2 * LENGTH
    assert (json.loads(state.read_text())["epoch"], json.loads(state.read_text())["batch"]) == (1, LENGTH)
    second = run(config, "--epochs", "3", "--state", state)
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["batches"] == LENGTH
    assert Counter(made(tmp_path)) == Counter(f"{p} {n}" for p in range(3) for n in range(LENGTH))
    # The same interruption when the run had no epoch left: the resumed run reads nothing.
    (tmp_path / "interrupt").touch()
    state.unlink()
    assert run(config, "--epochs", "2", "--state", state).exit_code == 130
    saved = state.read_text()
    again = run(config, "--epochs", "2", "--state", state)
    assert (again.exit_code, json.loads(again.stdout)["batches"]) == (0, 0)
    assert state.read_text() == saved  # nothing was delivered: the state stays as it was


def test_sigterm_in_the_command_writes_the_summary_and_the_state_and_exits_143(tmp_path: Path) -> None:
    config, state = write_dataset(tmp_path, at=3), tmp_path / "run.state"
    (tmp_path / "sigterm").touch()
    result = run(config, "--epochs", "2", "--state", state)
    assert result.exit_code == 143, result.output
    summary = json.loads(result.stdout)
    assert (summary["interrupted"], summary["batches"]) == (True, LENGTH + 3)
    assert result.stderr.rstrip().endswith("terminated")
    assert "Traceback" not in result.stderr
    (tmp_path / "sigterm").unlink()
    resumed = run(config, "--epochs", "2", "--state", state)
    assert json.loads(resumed.stdout)["batches"] == LENGTH - 3
    assert json.loads(resumed.stdout)["resumed_at"] == {"epoch": 1, "batch": 3}


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "holds no stream state: a stream state must be a dict"),
        ('{"epoch": 1}', "holds no stream state: this is not a stream state"),
    ],
)
def test_a_file_that_is_no_state_is_one_error_line_and_is_kept(
    tmp_path: Path, content: str, phrase: str
) -> None:
    state = tmp_path / "run.state"
    state.write_text(content)
    result = run(write_dataset(tmp_path), "--state", state)
    assert result.exit_code == 2
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert phrase in errors[0]
    assert str(state) in errors[0]
    assert "Traceback" not in result.stderr
    assert state.read_text() == content


@pytest.mark.parametrize(
    ("saved_with", "resumed_with", "field"),
    [
        (["dataset.length=10"], ["dataset.length=12"], "fingerprint"),
        (["--workers", "2"], ["--workers", "3"], "workers"),
        (["--epoch-size", "4"], [], "epoch_size"),
        (["--rank", "0", "--world-size", "2", "--epoch-size", "3"], ["--rank", "1", "--world-size", "2",
                                                                     "--epoch-size", "3"], "rank"),
        ([], ["--stream", "valid"], "stream"),
    ],
)  # fmt: skip
def test_a_state_of_another_run_is_refused_naming_the_field(
    tmp_path: Path, saved_with: list[str], resumed_with: list[str], field: str
) -> None:
    config, state = write_dataset(tmp_path), tmp_path / "run.state"
    first = run(config, *saved_with, "--state", state)
    assert first.exit_code == 0, first.output
    saved = state.read_text()
    result = run(config, *resumed_with, "--state", state)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]]
    assert f"cannot resume from {state}: stream state is for {field} " in errors[0]
    assert "Traceback" not in result.stderr
    assert state.read_text() == saved


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        (["--state-every", "3"], "--state-every N writes the state file: add --state FILE"),
        (["--rank", "2", "--world-size", "2"], "--rank 2 must be below --world-size 2"),
        (["--state", "{tmp}"], "is a directory"),
    ],
)
def test_option_errors_are_usage_errors(tmp_path: Path, arguments: list[str], phrase: str) -> None:
    result = run(write_dataset(tmp_path), *[argument.format(tmp=tmp_path) for argument in arguments])
    assert result.exit_code == 2
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr


def test_ranks_read_disjoint_parts_that_cover_the_stream(tmp_path: Path) -> None:
    config = write_dataset(tmp_path)
    for rank in range(3):
        result = run(config, "--rank", str(rank), "--world-size", "3", "--epoch-size", "3")
        assert result.exit_code == 0, result.output
    assert sorted(made(tmp_path)) == sorted(f"0 {n}" for n in range(9))


def _summary(command: list[str | Path]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("options", [[], ["--buffer", "3"], ["--workers", "2"]])
def test_sigterm_mid_epoch_exits_143_and_the_resumed_run_reads_exactly_the_rest(
    tmp_path: Path, options: list[str]
) -> None:
    config, state = write_dataset(tmp_path, at=4), tmp_path / "run.state"
    command = [EMLOOP, "dataset", "stream", config, "--epochs", "3", "--json", *options]
    whole = _summary(command)
    whole_made = made(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "block").touch()  # the dataset blocks while making batch 4 of pass 1
    process = subprocess.Popen(
        [*command, "--state", state], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_line(process, "blocked")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, stderr
    assert stderr.rstrip().endswith("terminated")
    assert "Traceback" not in stderr
    assert "error" not in stderr
    interrupted = json.loads(stdout)
    assert interrupted["interrupted"] is True
    assert interrupted["resumed_at"] is None
    saved = json.loads(state.read_text())
    assert saved["epoch"] == 1
    # Ahead of the reader, a buffer or a worker may block before the reader had all the batches before.
    assert saved["batch"] == 4 if not options else saved["batch"] <= 4
    # A signal landing between the wrapper handing a batch out and the summary counting it (NOTE [state
    # file]) leaves that batch out of the summary only; the state says what the wrapper handed out.
    delivered = LENGTH + saved["batch"]
    assert interrupted["batches"] in (delivered, delivered - 1)
    (tmp_path / "block").unlink()
    resumed = _summary([*command, "--state", state])
    assert resumed["resumed_at"] == {"epoch": 1, "batch": saved["batch"]}
    assert delivered + resumed["batches"] == whole["batches"] == 3 * LENGTH
    if not options:  # in this process a batch is made only when it is delivered: the very same batches
        assert Counter(made(tmp_path)) == Counter(whole_made)
