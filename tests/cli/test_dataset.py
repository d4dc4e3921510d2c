"""`emloop dataset info` and `emloop dataset METHOD`, through CliRunner and the installed command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from emloop_ds.cli.main import cli

WriteDataset = Callable[..., Path]
IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris" / "config.yaml"

DATASET = """
from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, batch_size=4, fail=False, **kwargs):
        if fail:
            raise RuntimeError("cannot open data.bin")
        self.batch_size = batch_size

    def train_stream(self):
        yield {"x": list(range(self.batch_size)), "words": [[1], [1, 2]] * (self.batch_size // 2)}

    def broken_stream(self):
        raise ValueError("split file missing")

    def summary(self):
        return f"batch size {self.batch_size}"

    def crash(self):
        raise KeyError("label")
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_info_prints_a_table_per_stream() -> None:
    code, out, err = invoke("dataset", "info", str(IRIS))
    assert code == 0, err
    assert "train stream" in out
    assert "test stream" in out
    assert "features" in out
    assert "float32" in out
    assert "[16, 4]" in out


def test_info_json_has_the_documented_shape() -> None:
    code, out, _ = invoke("dataset", "info", str(IRIS), "--json", "dataset.batch_size=8")
    assert code == 0
    data = json.loads(out)
    assert data["dataset"] == "iris_dataset.IrisDataset"
    test = next(stream for stream in data["streams"] if stream["name"] == "test")
    assert test == {
        "name": "test",
        "error": None,
        "sources": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": [8, 4],
                "min": 0.1,
                "max": 5.8,
                "nan": 0,
                "posinf": 0,
                "neginf": 0,
                "ragged": False,
            },
            {
                "name": "labels",
                "dtype": "int64",
                "shape": [8],
                "min": 0,
                "max": 0,
                "nan": 0,
                "posinf": 0,
                "neginf": 0,
                "ragged": False,
            },
        ],
    }


def test_info_reports_broken_streams_and_warns_of_ragged_sources(write_dataset: WriteDataset) -> None:
    code, out, err = invoke("dataset", "info", str(write_dataset(DATASET)), "--json")
    assert code == 1
    streams = {stream["name"]: stream for stream in json.loads(out)["streams"]}
    assert streams["broken"] == {"name": "broken", "error": "ValueError: split file missing", "sources": []}
    assert [s["ragged"] for s in streams["train"]["sources"]] == [False, True]
    assert "warning: source `words` of stream `train` is ragged" in err
    assert "warning: stream `broken` is broken: ValueError: split file missing" in err


def test_info_inspects_several_batches_when_asked() -> None:
    code, out, _ = invoke("dataset", "info", str(IRIS), "--json", "--batches", "8")
    train = next(stream for stream in json.loads(out)["streams"] if stream["name"] == "train")
    assert code == 0
    assert train["sources"][1]["max"] == 2


def test_method_command_prints_what_the_method_returns(write_dataset: WriteDataset) -> None:
    code, out, _ = invoke("dataset", "summary", str(write_dataset(DATASET)), "dataset.batch_size=6")
    assert (code, out) == (0, "batch size 6\n")


def test_method_command_accepts_dashes_for_underscores() -> None:
    code, out, _ = invoke("dataset", "class-counts", str(IRIS))
    assert code == 0
    assert "train: setosa 40, versicolor 40, virginica 40" in out


def test_dataset_help_lists_the_commands() -> None:
    code, out, _ = invoke("dataset", "--help")
    assert code == 0
    assert "info" in out
    assert "METHOD CONFIG" in out


def run_emloop(command: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([command, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


@pytest.mark.parametrize(
    ("config_text", "extra", "code", "message"),
    [
        (None, (), 2, "does not exist; pass the path of an emloop YAML config"),
        ("dataset:\n  class: [a\n", (), 2, "YAML syntax error in .*config.yaml:3:1"),
        ("model: {}\n", (), 2, "has no `dataset` section"),
        ("dataset:\n  batch_size: 3\n", (), 2, "has no `class`"),
        ("dataset:\n  class: nosuch.Data\n", (), 2, "cannot find module `nosuch`"),
        ("dataset:\n  class: {module}.Missing\n", (), 2, "has no class `Missing`"),
        ("dataset:\n  class: {module}.Data\n", ("bad-override",), 2, "cannot read override 'bad-override'"),
        (
            "dataset:\n  class: {module}.Data\n  fail: true\n",
            (),
            1,
            "failed to build: RuntimeError: cannot open",
        ),
    ],
)
def test_info_errors_are_one_line_with_exit_code(
    emloop_command: str,
    write_dataset: WriteDataset,
    tmp_path: Path,
    config_text: str | None,
    extra: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    config = tmp_path / "missing.yaml" if config_text is None else write_dataset(DATASET, config_text)
    result = run_emloop(emloop_command, "dataset", "info", str(config), *extra)
    assert result.returncode == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(message, lines[0])


@pytest.mark.parametrize(
    ("method", "code", "message"),
    [
        (
            "nothing",
            2,
            "has no method `nothing`; available: broken_stream, crash, stream_info, summary, train_stream",
        ),
        ("crash", 1, r"Data\.crash\(\) failed: KeyError: 'label'"),
        ("broken-stream", 1, r"Data\.broken_stream\(\) failed"),
    ],
)
def test_method_errors_are_one_line_with_exit_code(
    emloop_command: str, write_dataset: WriteDataset, method: str, code: int, message: str
) -> None:
    result = run_emloop(emloop_command, "dataset", method, str(write_dataset(DATASET)))
    assert result.returncode == code
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert re.search(message, result.stderr)


def test_verbose_shows_the_traceback_with_its_cause(emloop_command: str, write_dataset: WriteDataset) -> None:
    result = run_emloop(emloop_command, "dataset", "crash", str(write_dataset(DATASET)), "--verbose")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "KeyError: 'label'" in result.stderr
    assert "The above exception was the direct cause" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: Data.crash() failed")


def test_installed_command_runs_the_example_from_another_directory(
    emloop_command: str, tmp_path: Path
) -> None:
    result = run_emloop(emloop_command, "dataset", "info", str(IRIS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "train stream" in result.stdout


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emloop_ds", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "dataset" in result.stdout


@pytest.mark.parametrize("kind", ["device", "fifo", "too large"])
def test_a_config_that_is_no_small_regular_file_is_refused_in_one_line(
    emloop_command: str, tmp_path: Path, kind: str
) -> None:
    if kind == "device":
        config, message = Path("/dev/zero"), "config /dev/zero is a character device, not a regular file"
    elif kind == "fifo":
        config, message = tmp_path / "config.yaml", "config.yaml is a FIFO, not a regular file"
        os.mkfifo(config)
    else:
        config, message = tmp_path / "big.yaml", "big.yaml is larger than 10 MB, too large for a config"
        with config.open("wb") as file:
            file.truncate(50 * 1024 * 1024)
    result = run_emloop(emloop_command, "dataset", "info", str(config))
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_an_override_naming_no_section_is_one_line_naming_the_sections(write_dataset: WriteDataset) -> None:
    config = write_dataset(DATASET)
    code, out, err = invoke("dataset", "summary", str(config), "datset.batch_size=2")
    assert (code, out) == (2, "")
    assert err == (
        f"error: override 'datset.batch_size=2' names no section of config {config}: "
        "`datset` is not one of its sections (dataset); check the first part of the key\n"
    )


def test_an_error_caused_by_an_override_names_the_override(write_dataset: WriteDataset) -> None:
    config = write_dataset(DATASET)
    code, out, err = invoke("dataset", "info", str(config), "dataset.class=nosuch.Data")
    assert (code, out) == (2, "")
    assert "cannot find module `nosuch` for dataset.class nosuch.Data in override 'dataset.class=" in err
    assert str(config) not in err
