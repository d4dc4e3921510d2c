"""Record which files of a dataset are complete, so that a later run makes no request for them.

The manifest is ``<data_root>/.emloop-ds/manifest.json``. Per file name it records the URL, size,
modification time and checksum of the file, and whether it was extracted. A record vouches for a file as
long as the file keeps that size and modification time and the config asks for the same URL and (if it
gives one) the same checksum. Checking this costs one ``stat``, never a re-read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emloop_ds.core.download.checksum import Checksum
from emloop_ds.core.download.lock import hold_lock
from emloop_ds.core.errors import DownloadError

__all__ = ["STATE_DIR", "Manifest", "ManifestRecord"]

STATE_DIR = ".emloop-ds"
"""The folder in ``data_root`` holding the manifest, locks and staging folders."""

_VERSION = 1


@dataclass(frozen=True)
class ManifestRecord:
    """What was recorded when a file was completed."""

    url: str
    size_bytes: int
    mtime_ns: int
    checksum: Checksum
    extracted: bool


class Manifest:
    """The manifest of one ``data_root``; safe to use from several threads and processes."""

    def __init__(self, data_root: Path) -> None:
        """Use the manifest in ``data_root``'s state folder (created on the first save)."""
        self.state_dir = data_root / STATE_DIR
        self._path = self.state_dir / "manifest.json"
        self._lock_path = self.state_dir / "manifest.lock"

    def find(self, filename: str, url: str, checksum: Checksum | None, target: Path) -> ManifestRecord | None:
        """Return the record of ``filename`` if it still vouches for ``target``, else ``None``."""
        record = self._read().get(filename)
        if record is None or record.url != url or (checksum is not None and record.checksum != checksum):
            return None
        try:
            status = target.stat()
        except OSError:
            return None
        if (status.st_size, status.st_mtime_ns) != (record.size_bytes, record.mtime_ns):
            return None
        return record

    def save(
        self, filename: str, url: str, checksum: Checksum, target: Path, extracted: bool
    ) -> ManifestRecord:
        """Record ``target`` as the complete file ``filename``.

        Raises:
            DownloadError: if the manifest cannot be written.
        """
        try:
            status = target.stat()
            record = ManifestRecord(url, status.st_size, status.st_mtime_ns, checksum, extracted)
            with hold_lock(self._lock_path):
                records = self._read()
                records[filename] = record
                self._write(records)
        except OSError as exc:
            raise DownloadError(
                f"cannot record {filename} in {self._path}: {exc.strerror or exc}; "
                "check the permissions of data_root and the free disk space"
            ) from exc
        return record

    def _read(self) -> dict[str, ManifestRecord]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            files = data["files"] if data.get("version") == _VERSION else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # no manifest, or an unreadable one: files are checked again, never trusted blindly
        return {name: record for name, raw in files.items() if (record := _record(raw)) is not None}

    def _write(self, records: dict[str, ManifestRecord]) -> None:
        # Saves are serialised under the lock, one per file downloaded: json's C encoder (no indent) and
        # plain dicts (not dataclasses.asdict) make one ~4x cheaper (20 files: ~0.3 ms, not ~1.1 ms).
        files = {name: _raw(record) for name, record in sorted(records.items())}
        data = {"version": _VERSION, "files": files}
        temporary = self.state_dir / f"manifest.{os.getpid()}.tmp"  # the lock makes it the only writer
        try:
            temporary.write_text(json.dumps(data), encoding="utf-8")
            temporary.chmod(0o644)
            os.replace(temporary, self._path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _raw(record: ManifestRecord) -> dict[str, Any]:
    checksum = {"algorithm": record.checksum.algorithm, "digest": record.checksum.digest}
    return {
        "url": record.url,
        "size_bytes": record.size_bytes,
        "mtime_ns": record.mtime_ns,
        "checksum": checksum,
        "extracted": record.extracted,
    }


def _record(raw: Any) -> ManifestRecord | None:
    try:
        checksum = Checksum(str(raw["checksum"]["algorithm"]), str(raw["checksum"]["digest"]))
        return ManifestRecord(
            str(raw["url"]), int(raw["size_bytes"]), int(raw["mtime_ns"]), checksum, bool(raw["extracted"])
        )
    except (KeyError, TypeError, ValueError):
        return None
