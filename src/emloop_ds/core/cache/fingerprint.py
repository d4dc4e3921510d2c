"""Fingerprint datasets and stream callables, and place their caches under the cache root."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emloop_ds.core.config import decode_yaml
from emloop_ds.core.dataset import AbstractDataset

__all__ = [
    "FORMAT_VERSION",
    "callable_cache_path",
    "callable_fingerprint",
    "dataset_cache_dir",
    "dataset_fingerprint",
    "default_cache_root",
    "module_source_sha256",
    "stream_cache_path",
]

FORMAT_VERSION: int = 1
"""The version of the on-disk layout (core/cache/__init__.py); a change makes every older cache unused."""


def default_cache_root() -> Path:
    """Return ``$EMLOOP_DS_CACHE``, else ``$XDG_CACHE_HOME/emloop-ds``, else ``~/.cache/emloop-ds``."""
    explicit = os.environ.get("EMLOOP_DS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "emloop-ds"
    return Path.home() / ".cache" / "emloop-ds"


def module_source_sha256(module_name: str) -> str:
    """Return the sha256 of a module's source, over every ``.py`` of its top-level package if it is one.

    A module without a source file (built in, or defined in ``__main__`` without a file) hashes its name.
    """
    top = module_name.split(".")[0]
    module = sys.modules.get(top) or sys.modules.get(module_name)
    digest = hashlib.sha256()
    paths: list[Path] = []
    if module is not None and getattr(module, "__path__", None):  # a package: every .py under it
        for folder in module.__path__:
            paths.extend(sorted(Path(folder).rglob("*.py")))
        base = Path(next(iter(module.__path__)))
    else:
        module = sys.modules.get(module_name)
        file = getattr(module, "__file__", None) if module is not None else None
        if file is not None:
            paths.append(Path(file))
        base = Path(file).parent if file is not None else Path()
    if not paths:
        digest.update(module_name.encode())
    for path in paths:
        try:
            relative = str(path.relative_to(base))
        except ValueError:
            relative = path.name
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def dataset_fingerprint(dataset: AbstractDataset) -> str:
    """Return the sha256 hex over a dataset's class, its config's dataset section, its module source and
    the format version."""
    cls = type(dataset)
    # the config string is the dataset section's arguments (with output_dir), as the factory encodes it
    section = decode_yaml(getattr(dataset, "_config_str", "") or "") or {}
    canonical = json.dumps(section, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256()
    for part in (cls.__module__, cls.__qualname__, canonical, module_source_sha256(cls.__module__)):
        digest.update(part.encode() + b"\0")
    digest.update(str(FORMAT_VERSION).encode())
    return digest.hexdigest()


def callable_fingerprint(fn: Callable[..., Any]) -> str:
    """Return the sha256 hex over a callable's qualified name, its module's source and the format version.

    A ``functools.partial`` adds its arguments (by ``repr``), so partials of one function differ.
    """
    target, bound = _unpartial(fn)
    module = getattr(target, "__module__", None) or "__main__"
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    digest = hashlib.sha256()
    for part in (module, name, module_source_sha256(module), str(FORMAT_VERSION), *bound):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def _unpartial(fn: Callable[..., Any]) -> tuple[Callable[..., Any], list[str]]:
    """Return the function under any ``functools.partial`` layers, and each layer's arguments."""
    bound = []
    while isinstance(fn, functools.partial):
        bound.append(repr((fn.args, sorted(fn.keywords.items()))))
        fn = fn.func
    return inspect.unwrap(fn), bound


def dataset_cache_dir(dataset: AbstractDataset, root: Path | None = None) -> Path:
    """Return the folder of all of a dataset's stream caches (what ``--clear`` removes)."""
    base = default_cache_root() if root is None else Path(root)
    return base / f"{type(dataset).__qualname__}-{dataset_fingerprint(dataset)[:16]}"


def stream_cache_path(dataset: AbstractDataset, stream: str, root: Path | None = None) -> Path:
    """Return the cache folder of one of a dataset's streams."""
    return dataset_cache_dir(dataset, root) / stream


def callable_cache_path(fn: Callable[..., Any], folder: Path) -> Path:
    """Return the cache folder of a stream callable inside ``folder``."""
    target = _unpartial(fn)[0]
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    safe = "".join(char if char.isalnum() or char in "._-" else "_" for char in name)
    return Path(folder) / f"{safe}-{callable_fingerprint(fn)[:16]}"
