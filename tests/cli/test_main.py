"""The root group: logging for commands, --quiet, and Click's usage errors in our one-line form."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from emloop_ds.cli.main import cli

WriteDataset = Callable[..., Path]
IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris" / "config.yaml"

LOGGING_DATASET = """
import logging

from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, **kwargs):
        pass

    def chatty(self):
        logging.getLogger("my_dataset").info("own info")
        logging.getLogger("my_dataset").debug("own debug")
        for name in ("urllib3.connectionpool", "filelock", "distributed.worker"):
            logging.getLogger(name).info(f"{name} info")
        logging.getLogger("urllib3.connectionpool").warning("urllib3 warning")
        logging.getLogger("my_dataset").warning("own warning")
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="emloop")
    return result.exit_code, result.stdout, result.stderr


def test_stream_info_prints_the_report_it_logs_on_stderr() -> None:
    code, out, err = invoke("dataset", "stream-info", str(IRIS))
    assert (code, out) == (0, "")
    assert "INFO    emloop_ds: Found 2 streams: test, train" in err
    assert "INFO    emloop_ds:   features: float32 [16, 4]  range 0.1 - 6.5" in err


def test_commands_log_info_of_datasets_but_only_warnings_of_libraries(write_dataset: WriteDataset) -> None:
    code, out, err = invoke("dataset", "chatty", str(write_dataset(LOGGING_DATASET)))
    assert (code, out) == (0, "")
    messages = [line.split(": ", 1)[1] for line in err.splitlines()]
    assert messages == ["own info", "urllib3 warning", "own warning"]
    assert "WARNING urllib3.connectionpool: urllib3 warning" in err


def test_quiet_logs_only_warnings(write_dataset: WriteDataset) -> None:
    code, out, err = invoke("--quiet", "dataset", "chatty", str(write_dataset(LOGGING_DATASET)))
    assert (code, out) == (0, "")
    assert [line.split(": ", 1)[1] for line in err.splitlines()] == ["urllib3 warning", "own warning"]


def test_logging_is_put_back_when_the_command_ends(write_dataset: WriteDataset) -> None:
    root, urllib3 = logging.getLogger(), logging.getLogger("urllib3")
    before = (root.level, list(root.handlers), urllib3.level)
    assert invoke("dataset", "chatty", str(write_dataset(LOGGING_DATASET)))[0] == 0
    assert invoke("dataset", "info", "missing.yaml")[0] == 2
    assert (root.level, list(root.handlers), urllib3.level) == before


def test_the_installed_command_logs_to_stderr_only(emloop_command: str) -> None:
    result = subprocess.run(
        [emloop_command, "dataset", "stream-info", str(IRIS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert "INFO    emloop_ds: stream `train`:" in result.stderr


@pytest.mark.parametrize(
    ("args", "message", "usage"),
    [
        (
            ["dataset", "info"],
            "error: Missing argument 'CONFIG'",
            "usage: emloop dataset info [OPTIONS] CONFIG",
        ),
        (["--bogus"], "error: No such option", "usage: emloop [OPTIONS] COMMAND [ARGS]..."),
        (["dataset", "info", str(IRIS), "--batches", "0"], "error: Invalid value for '--batches'", "usage: "),
        (
            ["datset", "info"],
            "error: no command `datset`; did you mean `dataset`?",
            "usage: emloop [OPTIONS]",
        ),
        (["foo"], "error: no command `foo`; commands: dataset", "usage: emloop [OPTIONS] COMMAND"),
        (
            ["dataset", "stream", str(IRIS), "--eager"],
            "error: --eager needs a buffer",
            "usage: emloop dataset",
        ),
    ],
)
def test_usage_errors_are_our_error_line_plus_the_usage(args: list[str], message: str, usage: str) -> None:
    code, out, err = invoke(*args)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(message)
    assert lines[1].startswith(usage)
    assert lines[1].endswith(" --help')")


def test_the_installed_command_reports_a_usage_error_in_two_lines(emloop_command: str) -> None:
    result = subprocess.run(
        [emloop_command, "dataset", "info", "--bogus", str(IRIS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        result.stderr.splitlines()[0],
        "usage: emloop dataset info [OPTIONS] CONFIG [KEY=VALUE]...  (see 'emloop dataset info --help')",
    ]
    assert result.stderr.startswith("error: No such option")


def test_no_arguments_still_show_the_help() -> None:
    code, out, err = invoke()
    assert code in (0, 2)  # Click 8.2 exits 2 after showing a group's help for no arguments
    assert "Commands:" in out + err
    assert "dataset" in out + err


def test_version_prints_the_installed_distributions_version(emloop_command: str) -> None:
    from importlib.metadata import version

    assert invoke("--version") == (0, f"emloop {version('emloop-ds')}\n", "")
    done = subprocess.run([emloop_command, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"emloop {version('emloop-ds')}\n", "")
