"""Find the ```python blocks of a Markdown file and run one as written, for the README and the guide.

The rule (docs/development.md): a ```python block is run unless its first line is a comment starting with
`# fragment:`, which says what the block leaves out (a model, a training loop). Each block runs on its own
in a temporary folder holding a copy of `examples/`, whose configs download from a `file://` mirror built
here instead of the internet; a `print(...)` line's trailing comment must appear in what it prints.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emloop_ds.core.config import decode_yaml, encode_yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAGMENT_MARKER = "# fragment:"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[str, str]]:
    """Return (id, source) of each ```python block: the id is its line number and nearest heading."""
    blocks = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        headings = re.findall(r"^#+ (.*)$", text[: match.start()], re.MULTILINE)
        heading = re.sub(r"\W+", "-", headings[-1] if headings else "top").strip("-").lower()
        blocks.append((f"line-{line}-{heading}", match.group(1)))
    return blocks


def runnable(blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the blocks that are not marked as fragments."""
    return [(name, source) for name, source in blocks if not source.startswith(FRAGMENT_MARKER)]


def run_block(source: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run one block in a fresh copy of ``examples/`` with mirrored downloads; check its promised prints."""
    work = tmp_path / "work"
    shutil.copytree(REPO_ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    mirror_downloads(work / "examples", tmp_path / "mirror")
    monkeypatch.chdir(work)
    monkeypatch.setenv("EMLOOP_DS_CACHE", str(tmp_path / "cache-root"))  # never the user's cache
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(source, name, "exec"), {"__name__": "__markdown_block__"})
    for expected in re.findall(r"print\(.*\)  # (.+)$", source, re.MULTILINE):
        assert expected in output.getvalue(), f"{name} promises {expected!r}; printed {output.getvalue()!r}"


def mirror_downloads(examples: Path, mirror: Path) -> None:
    """Point every download of the configs under ``examples`` at ``file://`` copies made in ``mirror``."""
    mirror.mkdir()
    for config_path in examples.glob("*/config.yaml"):
        config = decode_yaml(config_path.read_text(encoding="utf-8"))
        section = config["dataset"]
        if section.get("download_filenames"):  # the url_root form: one root, each file checked by md5
            names = [
                entry if isinstance(entry, str) else entry["filename"]
                for entry in section["download_filenames"]
            ]
            section["download_filenames"] = [_mirror_file(mirror, name) for name in names]
            section["url_root"] = mirror.as_uri() + "/"
        elif section.get("download_urls"):
            urls = [entry if isinstance(entry, str) else entry["url"] for entry in section["download_urls"]]
            names = [url.rstrip("/").rpartition("/")[2] for url in urls]
            section["download_urls"] = [
                {"url": (mirror / name).as_uri(), "md5": _mirror_file(mirror, name)["md5"]} for name in names
            ]
        else:
            continue
        config_path.write_text(encode_yaml(config), encoding="utf-8")


def _mirror_file(mirror: Path, name: str) -> dict[str, str]:
    """Write the stand-in for ``name`` into ``mirror``; return its entry of ``download_filenames``."""
    target = mirror / name
    target.write_bytes(_mirror_content(name))
    return {"filename": name, "md5": hashlib.md5(target.read_bytes()).hexdigest()}


def _mirror_content(filename: str) -> bytes:
    """Make a small stand-in for a file of an example's dataset; extend this for a new example."""
    rng = np.random.default_rng(len(filename))
    if filename.endswith("-idx3-ubyte.gz"):  # MNIST images: 120 of 28x28 bytes
        return _idx(rng.integers(0, 256, size=(120, 28, 28)), magic=0x803)
    if filename.endswith("-idx1-ubyte.gz"):  # MNIST labels
        return _idx(rng.integers(0, 10, size=120), magic=0x801)
    if filename == "digits-png.tar.gz":  # the digits example's real archive, as its make_mirror.py builds it
        import runpy
        import tempfile

        make_mirror = runpy.run_path(str(REPO_ROOT / "examples" / "digits" / "make_mirror.py"))
        with tempfile.TemporaryDirectory() as folder:
            return Path(make_mirror["build_archive"](Path(folder))).read_bytes()
    raise AssertionError(f"no mirror content for {filename}: teach tests/test_readme.py to make it")


def _idx(array: Any, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return gzip.compress(header + np.asarray(array, dtype=np.uint8).tobytes())
