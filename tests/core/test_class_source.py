"""Reading a dataset class's public names from its source, without importing it."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from emloop_ds.core.class_source import ClassNames, read_class_names

_numbers = itertools.count()


def write_module(folder: Path, source: str, name: str | None = None) -> str:
    """Write a module (``pkg/mod`` names make packages) and return its dotted name, unique per session."""
    name = name or f"classsource_{next(_numbers)}"
    path = folder / f"{name.replace('.', '/')}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(folder).parents:
        if parent != Path("."):
            (folder / parent / "__init__.py").touch()
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return name


DATASET = """
raise RuntimeError("importing this module would fail: the reader must not import it")

from emloop_ds import DownloadableDataset

class Data(DownloadableDataset):
    LABELS = ("a", "b")

    def _configure_dataset(self, output_dir, **kwargs):
        pass

    def summary(self, verbose=False):
        pass

    def needs(self, what):
        pass

    @property
    def size(self):
        return 3

    async def fetch(self):
        pass

    def _private(self):
        pass
"""


def test_names_of_the_class_and_its_emloop_base_are_read_without_importing(tmp_path: Path) -> None:
    module = write_module(tmp_path, DATASET)
    names = read_class_names(f"{module}.Data", [tmp_path])
    assert names == ClassNames(
        functions=frozenset({"summary", "fetch", "stream_info", "download"}),
        others=frozenset({"LABELS", "needs", "size", "data_root", "download_urls", "cached"}),
    )
    assert "size" in names
    assert "_private" not in names
    assert module not in sys.modules


@pytest.mark.parametrize(
    ("imports", "base"),
    [
        ("import emloop as el", "el.DownloadableDataset"),
        ("from emloop.datasets import DownloadableDataset", "DownloadableDataset"),
    ],
)
def test_emloop_names_of_the_base_classes_are_read_live(tmp_path: Path, imports: str, base: str) -> None:
    source = f"""
    {imports}

    class Data({base}):
        def summary(self):
            pass
    """
    names = read_class_names(f"{write_module(tmp_path, source)}.Data", [tmp_path])
    assert names is not None
    assert names.functions == {"summary", "stream_info", "download"}
    assert {"data_root", "download_urls"} <= names.others


def test_bases_are_followed_through_imports_and_packages(tmp_path: Path) -> None:
    base = write_module(
        tmp_path,
        """
        from emloop_ds import BaseDataset

        class Common(BaseDataset):
            def shared(self):
                pass
        """,
        name=f"pkg{next(_numbers)}.base",
    )
    package = base.partition(".")[0]
    write_module(
        tmp_path,
        """
        from . import base
        from .base import Common as Renamed

        class Middle(Renamed):
            def middle(self):
                pass

        class Data(Middle, base.Common):
            shared = None
        """,
        name=f"{package}.data",
    )
    names = read_class_names(f"{package}.data.Data", [tmp_path])
    assert names is not None
    assert names.functions == {"middle", "stream_info"}
    assert "shared" in names.others


def test_a_class_imported_from_another_module_is_read_there(tmp_path: Path) -> None:
    real = write_module(tmp_path, "class Data:\n    def hello(self):\n        pass\n")
    alias = write_module(tmp_path, f"from {real} import Data\n")
    assert read_class_names(f"{alias}.Data", [tmp_path]) == ClassNames(frozenset({"hello"}), frozenset())


@pytest.mark.parametrize(
    "source",
    [
        "import functools\n@functools.total_ordering\nclass Data:\n    pass\n",
        "class Meta(type):\n    pass\nclass Data(metaclass=Meta):\n    pass\n",
        "class Data:\n    pass\nsetattr(Data, 'hello', lambda self: 1)\n",
        "class Data:\n    pass\nData.hello = lambda self: 1\n",
        "class Data:\n    for name in ('a', 'b'):\n        pass\n",
        "from collections import OrderedDict\nclass Data(OrderedDict):\n    pass\n",
        "class Data(make_base()):\n    pass\n",
        "class Other:\n    pass\n",
        "def broken(:\n",
        "class Data:\n    def __getattr__(self, name):\n        return 1\n",
        "class Data:\n    def __init__(self):\n        self.__dict__.update(a=1)\n",
        "class Data:\n    def __init__(self):\n        vars(self).update(a=1)\n",
    ],
)
def test_a_source_that_does_not_tell_for_certain_gives_none(tmp_path: Path, source: str) -> None:
    module = write_module(tmp_path, source)
    assert read_class_names(f"{module}.Data", [tmp_path]) is None


def test_a_missing_module_gives_none(tmp_path: Path) -> None:
    assert read_class_names("no_such_module_anywhere.Data", [tmp_path]) is None
    assert read_class_names("no_such_package.sub.Data", [tmp_path]) is None


def test_the_iris_example_is_read() -> None:
    folder = Path(__file__).resolve().parents[2] / "examples" / "iris"
    names = read_class_names("iris_dataset.IrisDataset", [folder])
    assert names is not None
    assert names.functions == {"train_stream", "test_stream", "class_counts", "stream_info"}


def test_a_base_reached_through_a_module_alias_is_read(tmp_path: Path) -> None:
    module = write_module(
        tmp_path,
        "import emloop_ds as el\n\nclass Data(el.DownloadableDataset):\n    def own(self):\n        pass\n",
    )
    names = read_class_names(f"{module}.Data", [tmp_path])
    assert names is not None
    assert names.functions == {"own", "stream_info", "download"}


def test_static_and_class_methods_count_and_instance_attributes_are_seen(tmp_path: Path) -> None:
    module = write_module(
        tmp_path,
        """
        class Data:
            def __init__(self, config):
                self.dynamic = lambda: 1
                self.first, (self.second, _) = 1, (2, 3)

            @staticmethod
            def version():
                pass

            @classmethod
            def kinds(cls, verbose=False):
                pass

            @staticmethod
            def scale(factor):
                pass

            @classmethod
            def make(cls, config):
                pass
        """,
    )
    names = read_class_names(f"{module}.Data", [tmp_path])
    assert names == ClassNames(
        functions=frozenset({"version", "kinds"}),
        others=frozenset({"scale", "make", "dynamic", "first", "second"}),
    )
