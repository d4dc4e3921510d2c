"""Ship a stream's code to the Dask workers: the dataset's module, or its top-level package, zipped.

Only code outside installed packages and the standard library is shipped (installed code must already be
on the workers, like emloop-ds itself). The zip goes to the workers only, through Dask's ``UploadFile``
worker plugin, never through ``Client.upload_file``, which also imports it on the scheduler.
"""

from __future__ import annotations

import hashlib
import io
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from emloop_ds.core.stream.engine import StreamSpec

__all__ = ["code_to_ship", "ship_code"]

_SKIPPED_PARTS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})


def code_to_ship(spec: StreamSpec) -> tuple[str, Path] | None:
    """Return (archive name prefix, file or package folder) of the code a worker needs, or None."""
    module_name, module_file = _stream_module(spec)
    if module_name is None or module_file is None or module_name == "__main__":
        return None  # cloudpickle sends a function of __main__ by value
    path = Path(module_file).resolve()
    if module_name.split(".")[0] == "emloop_ds" or _is_installed(path):
        return None
    depth = module_name.count(".") + (path.name == "__init__.py")
    root = path.parents[depth - 1] if depth else path
    return module_name.split(".")[0], root


def ship_code(client: Any, spec: StreamSpec) -> str | None:
    """Upload the stream's code to every worker, present and future; return the archive's file name.

    The name carries a hash of the content, so two versions never overwrite each other on a worker.
    """
    from distributed.diagnostics.plugin import UploadFile

    found = code_to_ship(spec)
    if found is None:
        return None
    prefix, root = found
    data = _zip(root)
    name = f"emloop-ds-{prefix}-{hashlib.sha256(data).hexdigest()[:12]}.zip"
    with tempfile.TemporaryDirectory(prefix="emloop-ds-ship-") as folder:
        archive = Path(folder) / name
        archive.write_bytes(data)
        plugin = UploadFile(str(archive), load=False)  # reads the file now; the actor imports from it
    client.register_plugin(plugin, name=name)
    return name


def _stream_module(spec: StreamSpec) -> tuple[str | None, str | None]:
    """Return the name and file of the module that defines the stream's dataset or function."""
    if spec.dataset_module is not None:
        return spec.dataset_module, spec.module_file
    name = getattr(spec.function, "__module__", None)
    module = sys.modules.get(name) if name else None
    return name, getattr(module, "__file__", None)


def _is_installed(path: Path) -> bool:
    """Return whether ``path`` lies in the standard library or an installed packages folder."""
    paths = sysconfig.get_paths()
    folders = {Path(paths[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(path.is_relative_to(folder) for folder in folders)


def _zip(root: Path) -> bytes:
    """Return a zip of a module file, or of a package folder under its own name; skip caches."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if root.is_file():
            archive.write(root, root.name)
        else:
            for file in sorted(root.rglob("*")):
                relative = file.relative_to(root.parent)
                if file.is_file() and file.suffix != ".pyc" and not _SKIPPED_PARTS & set(relative.parts):
                    archive.write(file, relative.as_posix())
    return buffer.getvalue()
