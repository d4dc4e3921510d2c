"""Building datasets from configs and calling their methods."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emloop_ds.core.config import load_config
from emloop_ds.core.errors import ConfigError, DatasetError
from emloop_ds.core.factory import call_method, create_dataset, find_method, public_methods

WriteDataset = Callable[..., Path]

DATASET = """
from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, size=3, **kwargs):
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        self.size = size
        self.output_dir = output_dir

    def describe(self):
        return f"{self.size} examples"

    def explode(self):
        raise KeyError("missing column")

    def needs(self, what):
        return what

    def _private(self):
        return "secret"
"""


def test_create_dataset_imports_the_class_beside_the_config(write_dataset: WriteDataset) -> None:
    path = write_dataset(DATASET, "dataset:\n  class: {module}.Data\n  size: 7\n")
    dataset = create_dataset(load_config(path), output_dir="out")
    assert (dataset.size, dataset.output_dir) == (7, "out")


def test_missing_module_is_a_config_error(write_dataset: WriteDataset) -> None:
    path = write_dataset(DATASET, "dataset:\n  class: nosuchmodule.Data\n")
    with pytest.raises(
        ConfigError, match=r"cannot find module `nosuchmodule`.*put nosuchmodule\.py in one of"
    ):
        create_dataset(load_config(path))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.class=nosuch.Data", r"nosuch\.Data in override 'dataset\.class=nosuch\.Data'; check"),
        (
            "dataset.class={module}.Nope",
            r"has no class `Nope`; check dataset\.class in override 'dataset\.cl",
        ),
    ],
)
def test_class_errors_caused_by_an_override_name_it(
    write_dataset: WriteDataset, override: str, message: str
) -> None:
    path = write_dataset(DATASET)
    module = load_config(path).class_path.rpartition(".")[0]
    with pytest.raises(ConfigError, match=message) as error:
        create_dataset(load_config(path, [override.replace("{module}", module)]))
    assert str(path) not in str(error.value)


def test_missing_class_is_a_config_error(write_dataset: WriteDataset) -> None:
    path = write_dataset(DATASET, "dataset:\n  class: {module}.Nope\n")
    with pytest.raises(ConfigError, match=r"has no class `Nope`"):
        create_dataset(load_config(path))


def test_module_failing_on_import_is_a_dataset_error(write_dataset: WriteDataset) -> None:
    path = write_dataset("raise RuntimeError('cannot start')\n")
    with pytest.raises(DatasetError, match=r"importing module .* failed: RuntimeError: cannot start"):
        create_dataset(load_config(path))


def test_module_missing_a_dependency_is_a_dataset_error(write_dataset: WriteDataset) -> None:
    path = write_dataset("import nosuchdependency\n")
    with pytest.raises(DatasetError, match=r"ModuleNotFoundError: No module named 'nosuchdependency'"):
        create_dataset(load_config(path))


def test_failing_constructor_is_a_dataset_error_with_cause(write_dataset: WriteDataset) -> None:
    path = write_dataset(DATASET, "dataset:\n  class: {module}.Data\n  size: -1\n")
    with pytest.raises(DatasetError, match=r"failed to build: ValueError: size must not be negative") as info:
        create_dataset(load_config(path))
    assert isinstance(info.value.__cause__, ValueError)


def test_call_method_returns_the_result(write_dataset: WriteDataset) -> None:
    dataset = create_dataset(load_config(write_dataset(DATASET)))
    assert call_method(dataset, "describe") == "3 examples"


@pytest.mark.parametrize("name", ["nothing", "_private", "size"])
def test_call_method_rejects_what_is_not_a_public_method(write_dataset: WriteDataset, name: str) -> None:
    dataset = create_dataset(load_config(write_dataset(DATASET)))
    with pytest.raises(ConfigError, match=f"has no method `{name}`; available: describe, explode"):
        call_method(dataset, name)


def test_call_method_rejects_a_method_needing_arguments(write_dataset: WriteDataset) -> None:
    dataset = create_dataset(load_config(write_dataset(DATASET)))
    with pytest.raises(ConfigError, match="method `needs` of Data needs arguments"):
        call_method(dataset, "needs")


def test_failing_method_is_a_dataset_error(write_dataset: WriteDataset) -> None:
    dataset = create_dataset(load_config(write_dataset(DATASET)))
    with pytest.raises(DatasetError, match=r"Data\.explode\(\) failed: KeyError: 'missing column'"):
        call_method(dataset, "explode")


def test_public_methods_lists_callable_public_methods(write_dataset: WriteDataset) -> None:
    dataset = create_dataset(load_config(write_dataset(DATASET)))
    assert public_methods(dataset) == ["describe", "explode", "stream_info"]


def test_config_folder_is_importable_from_another_directory(
    write_dataset: WriteDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_dataset(DATASET)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert create_dataset(load_config(Path("..") / path.name)).size == 3


EMLOOP_CALLABLES = """
from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, **kwargs):
        self.dynamic = lambda: "dynamic"
        self.needs_one = lambda x: x
        self.Nested = dict

    @staticmethod
    def version():
        return "1.0"

    @classmethod
    def kinds(cls):
        return cls.__name__

    @staticmethod
    def scale(factor):
        return factor

    @property
    def explodes(self):
        raise RuntimeError("property ran")
"""


@pytest.mark.parametrize(("name", "result"), [("version", "1.0"), ("kinds", "Data"), ("dynamic", "dynamic")])
def test_any_public_callable_runs_as_emloop_runs_it(
    write_dataset: WriteDataset, name: str, result: str
) -> None:
    dataset = create_dataset(load_config(write_dataset(EMLOOP_CALLABLES)))
    assert find_method(dataset, name) is not None
    assert call_method(dataset, name) == result


def test_public_methods_list_callables_without_running_properties(write_dataset: WriteDataset) -> None:
    dataset = create_dataset(load_config(write_dataset(EMLOOP_CALLABLES)))
    assert public_methods(dataset) == ["dynamic", "kinds", "stream_info", "version"]


@pytest.mark.parametrize("name", ["scale", "needs_one"])
def test_callables_needing_arguments_are_refused(write_dataset: WriteDataset, name: str) -> None:
    dataset = create_dataset(load_config(write_dataset(EMLOOP_CALLABLES)))
    with pytest.raises(ConfigError, match=f"method `{name}` of Data needs arguments"):
        call_method(dataset, name)


def test_a_raising_property_read_as_a_method_is_a_dataset_error(write_dataset: WriteDataset) -> None:
    dataset = create_dataset(load_config(write_dataset(EMLOOP_CALLABLES)))
    with pytest.raises(DatasetError, match=r"reading Data\.explodes failed: RuntimeError: property ran"):
        call_method(dataset, "explodes")
