"""Run every complete ```python example of README.md as written, so that none can drift from the code.

The rule and the runner are in tests/markdown_blocks.py; the guide's pages are run by tests/test_docs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.markdown_blocks import FRAGMENT_MARKER, REPO_ROOT, python_blocks, run_block, runnable

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
