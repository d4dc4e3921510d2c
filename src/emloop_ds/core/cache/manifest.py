"""Describe a sealed cache (``CacheInfo``) and read and write its ``manifest.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emloop_ds.core.errors import CacheError

__all__ = ["DATA_FILE", "MANIFEST_FILE", "CacheInfo", "SourceLayout", "read_manifest", "write_manifest"]

MANIFEST_FILE = "manifest.json"
DATA_FILE = "data.arrow"

REBUILD_HINT = "rebuild it with `emloop dataset cache CONFIG --force`"


@dataclass(frozen=True)
class SourceLayout:
    """Say how one source is stored: its kind, the container it came in, its dtype and item shape.

    ``kind`` is ``tensor`` (numbers or booleans), ``string`` or ``binary``. ``container`` is ``ndarray``
    (a numpy array per batch), ``list`` (a list of numbers, strings or bytes) or ``arrays`` (a list of
    numpy arrays). ``item_shape`` is ``None`` when examples differ in shape (stored variable-length).
    """

    name: str
    kind: str
    container: str
    dtype: str | None = None
    item_shape: tuple[int, ...] | None = None
    ndim: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the layout as a JSON object."""
        return {
            "name": self.name,
            "kind": self.kind,
            "container": self.container,
            "dtype": self.dtype,
            "item_shape": None if self.item_shape is None else list(self.item_shape),
            "ndim": self.ndim,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceLayout:
        """Rebuild a layout from ``to_json``'s object."""
        shape = data.get("item_shape")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            container=str(data["container"]),
            dtype=data.get("dtype"),
            item_shape=None if shape is None else tuple(int(size) for size in shape),
            ndim=int(data.get("ndim", 0)),
        )


@dataclass(frozen=True)
class CacheInfo:
    """Describe a sealed cache: where it is, what it holds and how big it is."""

    path: Path
    fingerprint: str
    description: str
    batches: int
    examples: int
    bytes: int
    sources: tuple[SourceLayout, ...]
    batch_lengths: tuple[int, ...] = field(repr=False)
    chunk_lengths: tuple[int, ...] = field(repr=False)
    files: dict[str, dict[str, Any]] = field(repr=False)
    format_version: int = 1

    def to_json(self) -> dict[str, Any]:
        """Return the manifest's JSON object (without ``path``, which is where it lies)."""
        return {
            "format_version": self.format_version,
            "fingerprint": self.fingerprint,
            "description": self.description,
            "batches": self.batches,
            "examples": self.examples,
            "bytes": self.bytes,
            "sources": [source.to_json() for source in self.sources],
            "batch_lengths": list(self.batch_lengths),
            "chunk_lengths": list(self.chunk_lengths),
            "files": self.files,
        }


def write_manifest(folder: Path, info: CacheInfo) -> None:
    """Write ``manifest.json`` into ``folder`` and fsync it."""
    path = folder / MANIFEST_FILE
    with open(path, "w", encoding="utf-8") as file:
        file.write(json.dumps(info.to_json(), separators=(",", ":")))  # C; json.dump encodes in Python
        file.flush()
        os.fsync(file.fileno())


def read_manifest(folder: Path, format_version: int) -> CacheInfo:
    """Read the manifest of the cache in ``folder``; raise ``CacheError`` if it is missing or garbage."""
    path = folder / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CacheError(f"no sealed cache at {folder}: {MANIFEST_FILE} is missing; {REBUILD_HINT}") from None
    except OSError as exc:
        raise CacheError(
            f"cannot read {path}: {exc.strerror}; check its permissions or {REBUILD_HINT}"
        ) from exc
    try:
        data = json.loads(text)
        version = int(data["format_version"])
        if version != format_version:
            raise CacheError(
                f"cache {folder} has format version {version}, this emloop-ds reads {format_version}; "
                f"{REBUILD_HINT}"
            )
        return CacheInfo(
            path=folder,
            fingerprint=str(data["fingerprint"]),
            description=str(data.get("description", "")),
            batches=int(data["batches"]),
            examples=int(data["examples"]),
            bytes=int(data["bytes"]),
            sources=tuple(SourceLayout.from_json(source) for source in data["sources"]),
            batch_lengths=tuple(int(length) for length in data["batch_lengths"]),
            chunk_lengths=tuple(int(length) for length in data["chunk_lengths"]),
            files={str(name): dict(entry) for name, entry in data["files"].items()},
            format_version=version,
        )
    except CacheError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CacheError(f"{path} is not a valid cache manifest ({exc!r}); {REBUILD_HINT}") from exc
