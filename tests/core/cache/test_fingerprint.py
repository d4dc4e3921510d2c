"""A fingerprint changes with the dataset's config and source, so that a stale cache is never used."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emloop_ds.core.cache import (
    FORMAT_VERSION,
    callable_cache_path,
    callable_fingerprint,
    dataset_cache_dir,
    dataset_fingerprint,
    default_cache_root,
    stream_cache_path,
)

MODULE = """
from emloop_ds import BaseDataset

class Numbers(BaseDataset):
    def _configure_dataset(self, output_dir=None, size=4, **kwargs):
        self.size = size

    def train_stream(self):
        yield {"x": list(range(self.size))}
"""


@pytest.fixture
def dataset_module(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Write a dataset module into ``tmp_path`` and put it on ``sys.path``; yield its name and file."""
    name = f"cache_fp_{uuid.uuid4().hex[:8]}"
    file = tmp_path / f"{name}.py"
    file.write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield name, file
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def _dataset(module: str, **config: Any) -> Any:
    return importlib.import_module(module).Numbers(json.dumps({**config, "output_dir": None}))


def test_fingerprint_is_stable_and_ignores_key_order(dataset_module: tuple[str, Path]) -> None:
    name, _ = dataset_module
    first = dataset_fingerprint(_dataset(name, size=4, other={"a": 1, "b": 2}))
    again = importlib.import_module(name).Numbers(
        '{"output_dir": null, "other": {"b": 2, "a": 1}, "size": 4}'
    )
    assert first == dataset_fingerprint(again)
    assert len(first) == 64


def test_fingerprint_changes_with_a_config_override(dataset_module: tuple[str, Path]) -> None:
    name, _ = dataset_module
    assert dataset_fingerprint(_dataset(name, size=4)) != dataset_fingerprint(_dataset(name, size=5))


def test_fingerprint_changes_with_an_edit_of_the_module_source(dataset_module: tuple[str, Path]) -> None:
    name, file = dataset_module
    dataset = _dataset(name, size=4)
    before = dataset_fingerprint(dataset)
    before_fn = callable_fingerprint(type(dataset).train_stream)
    file.write_text(MODULE.replace("range(self.size)", "range(self.size + 1)"))
    assert dataset_fingerprint(dataset) != before
    assert callable_fingerprint(type(dataset).train_stream) != before_fn


def test_fingerprint_covers_every_module_of_a_package(tmp_path: Path) -> None:
    name = f"cache_pkg_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "data.py").write_text(MODULE)
    (package / "helpers.py").write_text("SCALE = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        dataset = importlib.import_module(f"{name}.data").Numbers('{"output_dir": null}')
        before = dataset_fingerprint(dataset)
        (package / "helpers.py").write_text("SCALE = 2\n")
        assert dataset_fingerprint(dataset) != before
    finally:
        sys.path.remove(str(tmp_path))
        for module in [module for module in sys.modules if module.startswith(name)]:
            sys.modules.pop(module)


def test_paths_name_the_class_and_the_fingerprint(dataset_module: tuple[str, Path], tmp_path: Path) -> None:
    name, _ = dataset_module
    dataset = _dataset(name)
    folder = dataset_cache_dir(dataset, tmp_path / "root")
    assert folder == tmp_path / "root" / f"Numbers-{dataset_fingerprint(dataset)[:16]}"
    assert stream_cache_path(dataset, "train", tmp_path / "root") == folder / "train"
    fn = type(dataset).train_stream
    assert (
        callable_cache_path(fn, tmp_path)
        == tmp_path / f"Numbers.train_stream-{callable_fingerprint(fn)[:16]}"
    )
    assert FORMAT_VERSION == 1


def test_default_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMLOOP_DS_CACHE", str(tmp_path / "explicit"))
    assert default_cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("EMLOOP_DS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "emloop-ds"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "emloop-ds"
