"""Record which files of a dataset are complete, so a run makes no request for them.

A record holds the URL a file came from, its size, modification time and checksum, whether it was
extracted, and what the extraction put in ``data_root`` (path, size and sha256 of each file). Records live
in journals read by union (NOTE [record journal] in ``journal.py``); a record is written only after its
file is durably in place (NOTE [durable rename]). A record vouches for a file as long as the file keeps
that size and modification time and the config asks for no other checksum: checking costs a dictionary
look-up and one ``stat``. A file is known by its name, not its URL, so adding or reordering mirrors
downloads nothing again.

Earlier forms are migrated once: the first version's single ``manifest.json``, and the second version's
per-file records ``<data_root>/.emloop-ds/files/<filename>.json`` (read until the next compaction folds
them into the snapshot).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emloop_ds.core.download.checksum import Checksum
from emloop_ds.core.download.durable import fsync_folder
from emloop_ds.core.download.extracted_record import ExtractedFile
from emloop_ds.core.download.journal import Journal
from emloop_ds.core.errors import DownloadError

__all__ = ["STATE_DIR", "FileRecord", "StateStore"]

STATE_DIR = ".emloop-ds"
"""The folder in ``data_root`` holding the records, locks and staging folders."""

_VERSION = 2
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class FileRecord:
    """What was recorded when a file was completed."""

    url: str
    size_bytes: int
    mtime_ns: int
    checksum: Checksum
    extracted: bool
    extracted_files: tuple[ExtractedFile, ...] = field(default=())
    """What extracting the archive put in ``data_root``: path, size and sha256 per file."""


class StateStore:
    """The records of one ``data_root``; safe to use from several threads and processes."""

    def __init__(self, data_root: Path) -> None:
        """Use the state folder of ``data_root`` (created on the first save)."""
        self.data_root = data_root
        self.state_dir = data_root / STATE_DIR
        self.records_dir = self.state_dir / "files"
        self.journal = Journal(self.state_dir)
        self._may_have_per_file_records = True
        """False once a compaction folded every per-file record away: a miss then skips looking for one."""

    def read(self, filename: str, *, refresh: bool = True) -> FileRecord | None:
        """Return the record of ``filename``, or ``None`` if there is none or it cannot be read.

        ``refresh`` reads what other processes appended to their journals, on a miss.
        """
        raw = self.journal.get(filename, refresh=refresh)
        if raw is not None:
            return _record(raw) if raw.get("version") == _VERSION else None
        if not self._may_have_per_file_records:
            return None
        try:  # a record of the per-file form (NOTE [record journal] replaced it); compaction migrates it
            with open(os.path.join(self.records_dir, f"{filename}.json"), "rb") as file:
                raw = json.loads(file.read())  # bytes: json detects UTF-8, skipping the text layer
        except (OSError, ValueError):
            return None  # a missing or unreadable record: the file is checked again, never trusted blindly
        return _record(raw) if isinstance(raw, dict) and raw.get("version") == _VERSION else None

    def find(self, filename: str, checksum: Checksum | None, *, refresh: bool = True) -> FileRecord | None:
        """Return the record of ``filename`` if it still vouches for the file in ``data_root``."""
        try:
            status = os.stat(os.path.join(self.data_root, filename))
        except OSError:  # no record vouches for a missing file: the journals need no reading for it
            return None
        record = self.read(filename, refresh=refresh)
        if record is None or (checksum is not None and record.checksum != checksum):
            return None
        if (status.st_size, status.st_mtime_ns) != (record.size_bytes, record.mtime_ns):
            return None
        return record

    def save(
        self,
        filename: str,
        url: str,
        checksum: Checksum,
        *,
        extracted: bool,
        extracted_files: Sequence[ExtractedFile] = (),
    ) -> FileRecord:
        """Record the file ``filename`` in ``data_root`` as complete, as it is now.

        Raises:
            DownloadError: if the record cannot be written.
        """
        path = self.journal.folder
        try:
            status = os.stat(self.data_root / filename)
            record = FileRecord(
                url, status.st_size, status.st_mtime_ns, checksum, extracted, tuple(extracted_files)
            )
            self.journal.append(filename, _raw(record))
        except OSError as exc:
            raise DownloadError(
                f"cannot record {filename} in {path}: {exc.strerror or exc}; "
                "check the permissions of data_root and the free disk space"
            ) from exc
        return record

    def write_records(self, files: Sequence[tuple[str, str, Checksum]]) -> list[FileRecord]:
        """Record the downloaded files ``(filename, url, checksum)`` as they are now, in one journal write.

        The records are not flushed: the caller makes them durable (``journal.sync``) before it reports
        them. NOTE [group commit] in ``commit.py``.

        Raises:
            DownloadError: if a file cannot be read or the records cannot be written.
        """
        try:
            records = []
            for filename, url, checksum in files:
                status = os.stat(os.path.join(self.data_root, filename))
                records.append(FileRecord(url, status.st_size, status.st_mtime_ns, checksum, False))
            self.journal.write(
                [(filename, _raw(record)) for (filename, _, _), record in zip(files, records, strict=True)]
            )
        except OSError as exc:
            raise DownloadError(
                f"cannot record {_names(files)} in {self.journal.folder}: {exc.strerror or exc}; "
                "check the permissions of data_root and the free disk space"
            ) from exc
        return records

    def recorded_filenames(self) -> list[str]:
        """Return the names of all files with a record, sorted."""
        try:
            names = {name[: -len(".json")] for name in os.listdir(self.records_dir) if name.endswith(".json")}
        except OSError:
            names = set()
        return sorted(names.union(self.journal.names()))

    def compact(self) -> None:
        """Fold finished journals and per-file records into the snapshot; the caller holds the state lock.

        Raises:
            DownloadError: if the snapshot cannot be written (journals and records are then kept).
        """
        try:
            self.journal.compact(self._per_file_records(), self.records_dir)
            # Every readable one is folded in and deleted; only a version before the journals writes them.
            self._may_have_per_file_records = False
        except OSError as exc:
            raise DownloadError(
                f"cannot compact the records in {self.state_dir}: {exc.strerror or exc}; "
                "check the permissions of data_root and the free disk space"
            ) from exc

    def _per_file_records(self) -> dict[str, dict[str, Any]]:
        try:
            names = [name for name in os.listdir(self.records_dir) if name.endswith(".json")]
        except OSError:
            return {}
        records = {}
        for name in names:
            try:
                raw = json.loads((self.records_dir / name).read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(raw, dict):
                records[name[: -len(".json")]] = raw
        return records

    def migrate_manifest(self) -> None:
        """Split a first-version ``manifest.json`` into per-file records, once; then delete it.

        A file that already has its own record keeps it. The caller holds the migration lock.

        Raises:
            DownloadError: if a record cannot be written (the manifest is then kept for the next run).
        """
        manifest = self.state_dir / "manifest.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            files = data["files"] if data.get("version") == _MANIFEST_VERSION else {}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            files = {}  # unreadable: its files are checked again, never trusted blindly
        for filename, raw in files.items() if isinstance(files, dict) else ():
            record = _record({**raw, "extracted_files": []}) if isinstance(raw, dict) else None
            if record is not None and self.read(filename) is None:
                try:
                    self.journal.append(filename, _raw(record))
                except OSError as exc:
                    raise DownloadError(
                        f"cannot migrate {manifest} into per-file records: {exc.strerror or exc}; "
                        "check the permissions of data_root and the free disk space"
                    ) from exc
        manifest.unlink(missing_ok=True)
        (self.state_dir / "manifest.lock").unlink(missing_ok=True)
        fsync_folder(self.state_dir)

    def has_manifest(self) -> bool:
        """Tell whether a first-version manifest is waiting to be migrated."""
        return (self.state_dir / "manifest.json").exists()


def _names(files: Sequence[tuple[str, str, Checksum]]) -> str:
    return files[0][0] if len(files) == 1 else f"{files[0][0]} and {len(files) - 1} more files"


def _raw(record: FileRecord) -> dict[str, Any]:
    return {
        "version": _VERSION,
        "url": record.url,
        "size_bytes": record.size_bytes,
        "mtime_ns": record.mtime_ns,
        "checksum": {"algorithm": record.checksum.algorithm, "digest": record.checksum.digest},
        "extracted": record.extracted,
        "extracted_files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256} for f in record.extracted_files
        ],
    }


def _record(raw: dict[str, Any]) -> FileRecord | None:
    try:
        checksum = Checksum(str(raw["checksum"]["algorithm"]), str(raw["checksum"]["digest"]))
        files = tuple(
            ExtractedFile(str(item["path"]), int(item["size"]), str(item["sha256"]))
            for item in raw.get("extracted_files") or ()
        )
        return FileRecord(
            str(raw["url"]),
            int(raw["size_bytes"]),
            int(raw["mtime_ns"]),
            checksum,
            bool(raw["extracted"]),
            files,
        )
    except (KeyError, TypeError, ValueError):
        return None
