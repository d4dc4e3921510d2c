"""Verify a dataset's files without a request: every configured and recorded file, and every file its
archives extracted, against its size and checksum (``emloop dataset download --check``)."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emloop_ds.core.download.checksum import Checksum, hash_file
from emloop_ds.core.download.entry import DownloadEntry, parse_download_entries
from emloop_ds.core.download.lock import hold_lock
from emloop_ds.core.download.parallel import run_parallel
from emloop_ds.core.download.state import FileRecord, StateStore

__all__ = ["CHECK_STATUSES", "CheckResult", "check_dataset"]

CHECK_STATUSES = ("missing", "corrupt", "incomplete", "intact")
"""A file is missing, has other bytes than recorded or configured, was not completed (not recorded and no
checksum to verify it, or not extracted), or is intact; in order of severity."""


@dataclass(frozen=True)
class CheckResult:
    """What the check found for one file."""

    filename: str
    status: str
    problems: tuple[str, ...] = ()
    """One phrase per problem, e.g. ``member set/a.txt is missing``."""
    size_bytes: int | None = None

    @property
    def is_intact(self) -> bool:
        """Tell whether the file and everything it extracted are as recorded."""
        return self.status == "intact"


def check_dataset(data_root: str | Path, download_urls: Any, *, jobs: int = 4) -> list[CheckResult]:
    """Check every configured and every recorded file of ``data_root``, hashing ``jobs`` files at a time.

    Configured files come first, in their order, then files recorded but no longer configured.

    Raises:
        ConfigError: if an entry of ``download_urls`` is invalid.
    """
    entries = parse_download_entries(download_urls)
    store = StateStore(Path(data_root))
    if store.has_manifest():
        with hold_lock(store.state_dir / "locks" / "migrate.lock"):
            store.migrate_manifest()
    configured = {entry.filename for entry in entries}
    items: list[tuple[str, DownloadEntry | None]] = [(entry.filename, entry) for entry in entries]
    items += [(name, None) for name in store.recorded_filenames() if name not in configured]
    return run_parallel(lambda item: _check_file(store, *item), items, jobs, threading.Event())


def _check_file(store: StateStore, filename: str, entry: DownloadEntry | None) -> CheckResult:
    record = store.read(filename)
    try:
        size_bytes = os.stat(store.data_root / filename).st_size
    except OSError:
        return CheckResult(filename, "missing", ("not in data_root",))
    expected = entry.checksum if entry is not None and entry.checksum is not None else None
    if expected is None and record is not None:
        expected = record.checksum
    if expected is None:
        problem = "not recorded as complete, and no checksum in the config to verify it"
        return CheckResult(filename, "incomplete", (problem,), size_bytes)
    problems = _file_problems(store.data_root / filename, size_bytes, record, expected)
    if problems:
        return CheckResult(filename, "corrupt", problems, size_bytes)
    if entry is not None and entry.extract and (record is None or not record.extracted):
        return CheckResult(filename, "incomplete", ("the archive was not extracted",), size_bytes)
    if record is None:
        return CheckResult(filename, "intact", (), size_bytes)
    missing, corrupt = _extracted_problems(store.data_root, record)
    if missing:
        return CheckResult(filename, "missing", (*missing, *corrupt), size_bytes)
    return CheckResult(filename, "corrupt" if corrupt else "intact", tuple(corrupt), size_bytes)


def _file_problems(
    path: Path, size_bytes: int, record: FileRecord | None, expected: Checksum
) -> tuple[str, ...]:
    if record is not None and size_bytes != record.size_bytes:
        return (f"{size_bytes} bytes, recorded {record.size_bytes}",)
    try:
        actual = hash_file(path, expected.algorithm)
    except OSError as exc:
        return (f"cannot be read ({exc.strerror or exc})",)
    if actual != expected:
        return (f"expected {expected}, got {actual.digest}",)
    return ()


def _extracted_problems(data_root: Path, record: FileRecord) -> tuple[list[str], list[str]]:
    missing, corrupt = [], []
    for item in record.extracted_files:
        path = data_root / item.path
        try:
            size_bytes = os.stat(path).st_size
        except OSError:
            missing.append(f"extracted {item.path} is missing")
            continue
        if size_bytes != item.size:
            corrupt.append(f"extracted {item.path} has {size_bytes} bytes, recorded {item.size}")
            continue
        try:
            with path.open("rb") as file:
                digest = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError as exc:
            corrupt.append(f"extracted {item.path} cannot be read ({exc.strerror or exc})")
            continue
        if digest != item.sha256:
            corrupt.append(f"extracted {item.path} has sha256 {digest}, recorded {item.sha256}")
    return missing, corrupt
