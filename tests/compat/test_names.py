"""`import emloop`: emloop's dataset names are emloop-ds's own; the rest of emloop is refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

import emloop as el
import emloop_ds
from emloop_ds.cli.main import cli

WriteDataset = Callable[..., Path]

NOT_PROVIDED = "not provided: emloop-ds provides emloop's dataset layer only"


def test_emloop_names_are_the_emloop_ds_objects() -> None:
    for name in ("AbstractDataset", "BaseDataset", "DownloadableDataset", "StreamWrapper"):
        assert getattr(el, name) is getattr(el.datasets, name) is getattr(emloop_ds, name)
    for name in ("Batch", "Stream"):
        assert getattr(el, name) is getattr(el.types, name) is getattr(emloop_ds, name)
    assert el.datasets.__all__ == ["AbstractDataset", "BaseDataset", "DownloadableDataset", "StreamWrapper"]
    assert (el.EpochData, el.TimeProfile) == (el.types.EpochData, el.types.TimeProfile)


def test_emloop_types_are_defined_as_emloop_defines_them() -> None:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from emloop.types import Batch, EpochData, Stream, TimeProfile

    assert Batch == Mapping[str, Sequence[Any]]
    assert Stream == Iterable[Mapping[str, Sequence[Any]]]
    assert EpochData == Mapping[str, object]
    assert TimeProfile == Mapping[str, list[float]]


def test_all_names_exactly_the_public_names() -> None:
    for module in (el, el.datasets, el.types):
        public = {name for name in vars(module) if not name.startswith("_")}
        imported = {"Mapping"}  # emloop.types imports it for its aliases
        assert set(module.__all__) == public - imported, module.__name__
        assert module.__all__ == sorted(module.__all__)


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("el.MainLoop", "emloop.MainLoop"),
        ("el.create_main_loop", "emloop.create_main_loop"),
        ("from emloop import MainLoop", "emloop.MainLoop"),
        ("from emloop import hooks", "emloop.hooks"),
        ("import emloop.hooks", "emloop.hooks"),
        ("from emloop.hooks import StopAfter", "emloop.hooks"),
        ("import emloop.models.sequence", "emloop.models"),
        ("from emloop.types import TrainingTerminated", "emloop.types.TrainingTerminated"),
        ("from emloop.datasets import AbstractModel", "emloop.datasets.AbstractModel"),
    ],
)
def test_the_rest_of_emloop_fails_with_one_import_error(statement: str, name: str) -> None:
    with pytest.raises(ImportError) as raised:
        exec(statement, {"el": el})
    assert type(raised.value) is ImportError  # not ModuleNotFoundError: the module is known, and not ours
    assert str(raised.value).startswith(f"{name} is {NOT_PROVIDED}")
    assert "install emloop itself" in str(raised.value)
    assert raised.value.name == name


def test_private_names_stay_attribute_errors_and_other_modules_are_untouched() -> None:
    assert getattr(el, "__wrapped__", None) is None
    assert not hasattr(el.types, "_private")
    with pytest.raises(ModuleNotFoundError):
        __import__("emloopx")  # only `emloop.*` names are refused, not every name starting with it


def test_emloop_is_shipped_by_the_emloop_ds_distribution() -> None:
    assert set(metadata.packages_distributions()["emloop"]) == {"emloop-ds"}
    top_level = metadata.distribution("emloop-ds").read_text("top_level.txt") or ""
    assert set(top_level.split()) == {"emloop", "emloop_ds"}
    assert (Path(el.__file__).parent / "py.typed").is_file()


def test_a_fresh_interpreter_imports_emloop_without_heavy_modules() -> None:
    code = (
        "import sys, emloop as el\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pyarrow', 'click', 'rich', "
        "'requests', 'tqdm'})\n"
        "print(el.BaseDataset.__module__, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "emloop_ds.core.dataset []"


def test_a_dataset_module_that_imports_emloop_hooks_is_a_one_line_error(write_dataset: WriteDataset) -> None:
    config = write_dataset(
        """
        import emloop as el
        from emloop.hooks import AbstractHook

        class Data(el.BaseDataset):
            def _configure_dataset(self, **kwargs):
                pass
        """
    )
    result = CliRunner().invoke(cli, ["dataset", "info", str(config)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: importing module `testdata_")
    assert f"failed: ImportError: emloop.hooks is {NOT_PROVIDED}" in result.stderr
    assert len(result.stderr.splitlines()) == 1
