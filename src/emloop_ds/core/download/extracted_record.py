"""Keep, per archive, the record of the files it extracted: which paths in ``data_root`` are its own.

See NOTE [ownership index] in ``extract``: one small record per archive,
``.emloop-ds/extracted/<archive>.json``, is the index that tells an archive's own files from others'.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emloop_ds.core.download.durable import fsync_folder, write_json_atomically

__all__ = [
    "ExtractedFile",
    "ExtractionRecord",
    "find_owner",
    "read_record",
    "write_record",
]

_VERSION = 1
_RECORDS_DIR = "extracted"


@dataclass(frozen=True)
class ExtractedFile:
    """A file that an archive put into ``data_root``: its posix path relative to ``data_root``, size, sha256.

    A symbolic link is recorded with the size and sha256 of its target's text, as ``lstat`` sees it.
    """

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ExtractionRecord:
    """What one archive's last complete extraction put into ``data_root``, and that run's id."""

    run: str
    files: dict[str, ExtractedFile]


def read_record(state_dir: Path, archive_name: str) -> ExtractionRecord | None:
    """Return the record of ``archive_name``, or ``None`` if there is none or it is unreadable."""
    try:
        data = json.loads(_record_path(state_dir, archive_name).read_text(encoding="utf-8"))
        if data["version"] != _VERSION:
            return None
        files = (ExtractedFile(str(path), int(size), str(sha256)) for path, size, sha256 in data["files"])
        return ExtractionRecord(str(data["run"]), {file.path: file for file in files})
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no record, or an unreadable one: the archive is extracted again


def write_record(state_dir: Path, archive_name: str, run: str, files: Iterable[ExtractedFile]) -> None:
    """Replace the record of ``archive_name`` atomically and durably.

    Raises:
        OSError: if it cannot be written.
    """
    rows = [[file.path, file.size, file.sha256] for file in sorted(files, key=lambda file: file.path)]
    data = {"version": _VERSION, "archive": archive_name, "run": run, "files": rows}
    path = _record_path(state_dir, archive_name)
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        fsync_folder(path.parent.parent)  # the new folder's own name
    write_json_atomically(path, data)


def find_owner(state_dir: Path, path: str, *, excluding: str) -> str | None:
    """Return the name of an archive other than ``excluding`` whose record lists ``path``, if any.

    Reads every record: it is meant for error messages only (NOTE [ownership index]).
    """
    folder = state_dir / _RECORDS_DIR
    if not folder.is_dir():
        return None
    for record_file in sorted(folder.glob("*.json")):
        name = record_file.name.removesuffix(".json")
        if name == excluding:
            continue
        record = read_record(state_dir, name)
        if record is not None and path in record.files:
            return name
    return None


def _record_path(state_dir: Path, archive_name: str) -> Path:
    return state_dir / _RECORDS_DIR / f"{archive_name}.json"
