"""The user guide (docs/, mkdocs.yml): its python blocks run as written, and it builds strictly.

The blocks follow the README's rule (tests/markdown_blocks.py). The build runs `mkdocs build --strict`, as
.ci/run does, into a temporary folder; it needs the `docs` extra and is skipped, saying so, without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import emloop_ds
from emloop_ds.cli.main import cli
from emloop_ds.core import errors
from emloop_ds.core.config import decode_yaml
from tests.markdown_blocks import FRAGMENT_MARKER, REPO_ROOT, python_blocks, run_block, runnable

DOCS = REPO_ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCKS = [
    (f"{page.name}:{name}", source)
    for page in PAGES
    for name, source in python_blocks(page.read_text(encoding="utf-8"))
]
RUNNABLE = runnable(BLOCKS)
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_click")


def nav_pages() -> list[str]:
    """Return every page that the navigation of mkdocs.yml names, in order."""
    config = decode_yaml((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages: list[str] = []

    def visit(entry: object) -> None:
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                visit(value)
        elif isinstance(entry, list):
            for item in entry:
                visit(item)

    visit(config["nav"])
    return pages


def test_every_page_is_in_the_navigation_and_every_entry_is_a_page() -> None:
    assert sorted(nav_pages()) == sorted(page.name for page in PAGES)


def test_the_guide_has_complete_examples_and_marked_fragments() -> None:
    assert len(RUNNABLE) >= 5
    assert len(BLOCKS) > len(RUNNABLE)
    for _, source in BLOCKS:
        assert FRAGMENT_MARKER not in source.partition("\n")[2], "the marker belongs on the first line"


@pytest.mark.parametrize(("name", "source"), RUNNABLE, ids=[name for name, _ in RUNNABLE])
def test_guide_example_runs_as_written(
    name: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_block(source, f"docs/{name}", tmp_path, monkeypatch)


def test_the_api_page_documents_every_public_name() -> None:
    documented = re.findall(r"^::: emloop_ds\.(\w+)$", (DOCS / "api.md").read_text(), re.MULTILINE)
    assert sorted(documented) == sorted(emloop_ds.__all__)


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """Run `mkdocs build --strict` on ``config`` into ``site``; return the finished process."""
    missing = [name for name in DOCS_PACKAGES if not _installed(name)]
    if missing:
        pytest.skip(
            f"the docs extra is not installed (missing {', '.join(missing)}): pip install -e '.[docs]'"
        )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the guide once for the tests below; fail with mkdocs' output if it warns or fails."""
    site = tmp_path_factory.mktemp("site")
    built = build(REPO_ROOT / "mkdocs.yml", site)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stdout + built.stderr, built.stdout + built.stderr
    return site


def test_the_guide_builds_strictly_with_every_page_of_the_navigation(site: Path) -> None:
    for page in nav_pages():
        built = site / ("index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html")
        assert built.is_file(), f"{page} was not built"


def test_the_commands_page_documents_every_command_and_option(site: Path) -> None:
    html = (site / "cli" / "index.html").read_text(encoding="utf-8")
    dataset = cli.commands["dataset"]
    assert isinstance(dataset, click.Group)
    for name, command in dataset.commands.items():
        assert f'id="emloop-dataset-{name}"' in html, f"`emloop dataset {name}` is missing"
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.opts[0] in html, f"`emloop dataset {name} {parameter.opts[0]}` is missing"


def test_the_errors_page_lists_every_error_with_its_exit_code(site: Path) -> None:
    html = (site / "errors" / "index.html").read_text(encoding="utf-8")
    classes = [value for value in vars(errors).values() if isinstance(value, type)]
    error_classes = [cls for cls in classes if issubclass(cls, errors.EmloopDsError)]
    assert len(error_classes) >= 10
    for cls in error_classes:
        assert re.search(
            rf"<code>{cls.__name__}</code></td>\s*<td>.*?</td>\s*<td>{cls.exit_code}</td>", html
        ), f"{cls.__name__} with exit code {cls.exit_code} is missing"


def test_a_broken_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in PAGES:
        (docs / page.name).write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    (docs / "_hooks").mkdir()
    (docs / "_hooks" / "exit_codes.py").write_text((DOCS / "_hooks" / "exit_codes.py").read_text())
    with (docs / "index.md").open("a", encoding="utf-8") as index:
        index.write("\nSee [nowhere](reading-streams.md#no-such-section).\n")
    (tmp_path / "src").symlink_to(REPO_ROOT / "src")
    (tmp_path / "mkdocs.yml").write_text(
        (REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    built = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "no-such-section" in built.stdout + built.stderr


def _installed(module: str) -> bool:
    """Return whether ``module`` can be imported; a dotted name whose parent is missing cannot."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
