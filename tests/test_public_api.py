"""The package's public API is exactly what ``__all__`` names."""

import types

import emloop_ds


def test_all_names_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(emloop_ds).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(emloop_ds.__all__) == public


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
