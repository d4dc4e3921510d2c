"""Build a dataset object from its config and call its methods, wrapping the dataset's own failures."""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emloop_ds.core.config import DatasetConfig
from emloop_ds.core.errors import ConfigError, DatasetError, EmloopDsError, describe_exception

__all__ = ["call_method", "create_dataset", "find_method", "import_dataset_class", "public_methods"]


def create_dataset(config: DatasetConfig, output_dir: str | None = None) -> Any:
    """Import the configured class and construct it from the dataset section's YAML string.

    Raises:
        ConfigError: if the class cannot be found.
        DatasetError: if importing the module or constructing the dataset fails.
    """
    search_dirs = [Path.cwd()] if config.path is None else [config.path.parent, Path.cwd()]
    dataset_class = import_dataset_class(config.class_path, search_dirs, where=config.origin("class"))
    try:
        return dataset_class(config.to_config_str(output_dir))
    except EmloopDsError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"dataset {config.class_path} failed to build: {describe_exception(exc)}; "
            "fix the dataset's config or code (--verbose shows the traceback)"
        ) from exc


def import_dataset_class(class_path: str, search_dirs: list[Path], where: str = "the config") -> type:
    """Import ``module.Class``, with ``search_dirs`` importable ahead of installed packages.

    ``where`` names the place that set ``dataset.class`` (the config, or an override) in messages.

    Raises:
        ConfigError: if the module or the class does not exist.
        DatasetError: if the module fails while being imported.
    """
    module_name, _, class_name = class_path.rpartition(".")
    for folder in reversed(search_dirs):
        entry = str(folder.resolve())
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            folders = ", ".join(str(folder) for folder in search_dirs)
            raise ConfigError(
                f"cannot find module `{module_name}` for dataset.class {class_path} in {where}; "
                f"check the name, or put {module_name.replace('.', '/')}.py in one of: {folders}"
            ) from exc
        raise DatasetError(f"importing module `{module_name}` failed: {describe_exception(exc)}") from exc
    except Exception as exc:
        raise DatasetError(
            f"importing module `{module_name}` failed: {describe_exception(exc)}; fix the module "
            "(--verbose shows the traceback)"
        ) from exc
    dataset_class = getattr(module, class_name, None)
    if not isinstance(dataset_class, type):
        raise ConfigError(
            f"module `{module_name}` ({getattr(module, '__file__', '?')}) has no class `{class_name}`; "
            f"check dataset.class in {where}"
        )
    return dataset_class


def public_methods(dataset: Any) -> list[str]:
    """List the public methods of ``dataset`` that can be called without arguments.

    Methods, static and class methods, and callable attributes set on the instance count; properties and
    other descriptors are not run just to list the methods.
    """
    instance_attributes = getattr(dataset, "__dict__", {})
    names = []
    for name in sorted(dir(dataset)):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(dataset, name, None)
        if name not in instance_attributes and not isinstance(static, _METHOD_KINDS):
            continue
        member = getattr(dataset, name, None)
        if callable(member) and not inspect.isclass(member) and _takes_no_arguments(member):
            names.append(name)
    return names


def find_method(dataset: Any, name: str) -> Callable[..., Any] | None:
    """Return ``dataset.name`` if it is public and callable (emloop calls ``getattr(dataset, name)()``).

    Raises:
        DatasetError: if reading the attribute fails (a property that raises).
    """
    if name.startswith("_"):
        return None
    try:
        member = getattr(dataset, name, None)
    except EmloopDsError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"reading {type(dataset).__name__}.{name} failed: {describe_exception(exc)} "
            "(--verbose shows the traceback)"
        ) from exc
    return member if callable(member) else None


def call_method(dataset: Any, name: str) -> Any:
    """Call the public method ``name`` of ``dataset`` with no arguments and return its result.

    Any public callable counts (see ``find_method``), as in emloop.

    Raises:
        ConfigError: if the dataset has no such public method or it needs arguments.
        DatasetError: if the method fails.
    """
    class_name = type(dataset).__name__
    member = find_method(dataset, name)
    if member is None:
        import difflib

        methods = public_methods(dataset)
        close = difflib.get_close_matches(name, methods, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(f'`{method}`' for method in close)}? " if close else ""
        raise ConfigError(
            f"dataset {class_name} has no method `{name}`; {hint}available: {', '.join(methods) or 'none'}"
        )
    if not _takes_no_arguments(member):
        raise ConfigError(
            f"method `{name}` of {class_name} needs arguments; only methods callable without arguments "
            "can be run from the command line"
        )
    try:
        return member()
    except EmloopDsError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"{class_name}.{name}() failed: {describe_exception(exc)} (--verbose shows the traceback)"
        ) from exc


_METHOD_KINDS = (types.FunctionType, staticmethod, classmethod)


def _takes_no_arguments(bound: Callable[..., Any]) -> bool:
    """Tell whether a bound method or other callable can be called with no arguments."""
    try:
        parameters = inspect.signature(bound).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)
