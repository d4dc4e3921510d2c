"""The package's public API is exactly what ``__all__`` names."""

import subprocess
import sys
import types

import pytest

import emloop_ds


def test_all_names_exactly_the_public_names() -> None:
    public = {
        name
        for name in dir(emloop_ds)
        if not name.startswith("_") and not isinstance(getattr(emloop_ds, name), types.ModuleType)
    }
    assert set(emloop_ds.__all__) == public


def test_importing_the_package_imports_each_name_at_its_first_use() -> None:
    code = (
        "import sys, emloop_ds\n"
        "print(sorted(m for m in sys.modules if m.startswith('emloop_ds.')))\n"
        "wrapper = emloop_ds.StreamWrapper\n"
        "print(wrapper.__module__, 'emloop_ds.core.stream.wrapper' in sys.modules, "
        "'StreamWrapper' in vars(emloop_ds))"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert ran.stdout.splitlines() == ["[]", "emloop_ds.core.stream.wrapper True True"]


def test_every_exported_name_is_the_object_of_its_own_module() -> None:
    assert sorted(emloop_ds._EXPORTS) == emloop_ds.__all__
    for name in emloop_ds.__all__:
        value = getattr(emloop_ds, name)
        assert getattr(sys.modules[emloop_ds._EXPORTS[name]], name) is value


def test_a_name_the_package_does_not_export_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        emloop_ds.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_all_is_sorted() -> None:
    assert emloop_ds.__all__ == sorted(emloop_ds.__all__)


def test_every_error_derives_from_the_base_error() -> None:
    errors = [getattr(emloop_ds, name) for name in emloop_ds.__all__ if name.endswith("Error")]
    assert errors
    assert all(issubclass(error, emloop_ds.EmloopDsError) for error in errors)


def test_python_entry_points_are_importable_from_the_package() -> None:
    from emloop_ds import create_dataset, inspect_dataset, load_config
    from emloop_ds.core.config import load_config as core_load_config
    from emloop_ds.core.factory import create_dataset as core_create_dataset
    from emloop_ds.core.schema import inspect_dataset as core_inspect_dataset

    assert (load_config, create_dataset, inspect_dataset) == (
        core_load_config,
        core_create_dataset,
        core_inspect_dataset,
    )
    assert {"load_config", "create_dataset", "inspect_dataset"} <= set(emloop_ds.__all__)
