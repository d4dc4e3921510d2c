"""Run every complete ```python example of README.md as written, so that none can drift from the code.

The rule and the runner are in tests/markdown_blocks.py; the guide's pages are run by tests/test_docs.py.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.markdown_blocks import FRAGMENT_MARKER, REPO_ROOT, python_blocks, run_block, runnable
from tests.terminal import run_at_a_terminal

README = REPO_ROOT / "README.md"
BLOCKS = python_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = runnable(BLOCKS)


def test_the_readme_has_complete_examples_and_marked_fragments() -> None:
    assert len(RUNNABLE) >= 1
    for _, source in BLOCKS:
        assert FRAGMENT_MARKER not in source.partition("\n")[2], "the marker belongs on the first line"


def test_block_extraction_follows_fences_and_the_marker() -> None:
    text = (
        "# T\n```python\nprint(1)\n```\n"
        "## U\n```python\n# fragment: needs a model\nmodel()\n```\n"
        "```sh\nls\n```\n"
    )
    assert python_blocks(text) == [
        ("line-2-t", "print(1)\n"),
        ("line-6-u", "# fragment: needs a model\nmodel()\n"),
    ]
    assert runnable(python_blocks(text)) == [("line-2-t", "print(1)\n")]


@pytest.mark.parametrize(("name", "source"), RUNNABLE, ids=[name for name, _ in RUNNABLE])
def test_readme_example_runs_as_written(
    name: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_block(source, f"README.md:{name}", tmp_path, monkeypatch)


_CONSOLE = re.compile(r"^```console\n\$ (.*?)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_VARIES = re.compile(r"\d (ms|s)\b|/s\b")  # timings and rates differ from run to run


def _cells(line: str) -> str:
    """Return ``line`` with each run of spaces as one: a table's column widths follow its widest value,
    which may be a rate (a faster machine's examples/s is wider)."""
    return re.sub(r" +", " ", line.strip())


def test_the_walk_through_prints_what_the_readme_shows(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    dataset_module = next(source for _, source in BLOCKS if "class Flowers(" in source)
    config = re.search(r"^```yaml\n(dataset:\n  class: flowers\.Flowers\n.*?)^```$", text, re.M | re.S)
    assert config, "the README's flowers.yaml block is missing"
    shutil.copytree(
        REPO_ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "flowers.py").write_text(dataset_module, encoding="utf-8")
    (tmp_path / "flowers.yaml").write_text(config.group(1), encoding="utf-8")
    sessions = _CONSOLE.findall(text)
    assert [command.split()[2] for command, _ in sessions] == ["download", "info", "stream"]
    for command, shown in sessions:
        arguments = shlex.split(command.replace("$PWD", str(tmp_path)))
        assert arguments[0] == "emloop"
        returncode, stdout, stderr = _run_at_a_terminal(
            [sys.executable, "-m", "emloop_ds", *arguments[1:]], tmp_path
        )
        assert returncode == 0, stderr
        printed = [_cells(line) for line in stdout.splitlines()]
        for line in shown.splitlines():
            if not _VARIES.search(line):
                assert _cells(line) in printed, f"`{command}` no longer prints {line!r}:\n{stdout}"


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run_at_a_terminal(command: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``command`` with stdout on a pseudo-terminal 200 columns wide, as the README's sessions show it.

    Return its exit code, its stdout without colour codes, and its stderr (a pipe).
    """
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    returncode, shown, stderr = run_at_a_terminal(
        command, terminal="stdout", columns=200, rows=50, cwd=cwd, env=env
    )
    stdout = _ANSI_ESCAPE.sub("", shown.decode()).replace("\r\n", "\n")
    return returncode, stdout, stderr.decode()
