"""Keep the records of one ``data_root`` in append-only journals, made durable in groups.

NOTE [record journal]: each process appends its records to its own journal,
``<data_root>/.emloop-ds/journal/journal-<pid>-<random>.jsonl``, one JSON line per record, so journals of
several processes never interleave. The committer writes the records of a group of downloaded files in
one ``write`` and flushes them with the group's renames (NOTE [group commit] in ``commit.py``), only after
the files' bytes are on disk; other records (extractions, adopted files) are appended by ``append``, whose
callers share one ``fsync`` (as in NOTE [group flush]) and which returns only once its line is on disk, after
the file is durably in place (NOTE [durable rename]). So a recorded file is always complete. A line
cut short by a crash has no newline, or does not parse: it is ignored and its file is checked again.
Reading takes the union of the compacted snapshot ``records.json`` and every journal; the newest line for
a name wins. ``compact`` folds the journals of processes that are gone into the snapshot (atomic rename),
so the journals do not grow across runs.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from emloop_ds.core.download.durable import fsync_folder, write_json_atomically

__all__ = ["Journal"]

_SNAPSHOT_VERSION = 1


class Journal:
    """The record journals of one state folder, read by union and appended to by this process."""

    def __init__(self, state_dir: Path) -> None:
        """Use the journals under ``state_dir`` (created on the first append)."""
        self.folder = state_dir / "journal"
        self._snapshot = state_dir / "records.json"
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._descriptor: int | None = None
        self._written = 0
        self._synced = 0
        self._offsets: dict[str, int] = {}
        self._entries: dict[str, tuple[int, dict[str, Any]]] = {}
        self._snapshot_loaded = False
        self._own_name = ""
        self._own_merged = True
        """Whether every line of this process's journal is in ``_entries`` (appends put them there)."""
        self._snapshot_identity = (0, 0)

    def get(self, name: str, *, refresh: bool = True) -> dict[str, Any] | None:
        """Return the newest raw record of ``name``, reading what other processes appended on a miss."""
        with self._lock:
            if not self._snapshot_loaded:
                self._load_snapshot()
            entry = self._entries.get(name)
            if entry is None and refresh:
                if self._snapshot_changed():  # a compaction by another process folded journals into it
                    self._load_snapshot()
                self._read_journals()
                entry = self._entries.get(name)
        return None if entry is None else entry[1]

    def refresh(self) -> None:
        """Read the snapshot if it changed, and what the journals gained since they were last read."""
        with self._lock:
            if not self._snapshot_loaded or self._snapshot_changed():
                self._load_snapshot()
            self._read_journals()

    def names(self) -> list[str]:
        """Return every recorded name."""
        with self._lock:
            if not self._snapshot_loaded:
                self._load_snapshot()
            self._read_journals()
            return list(self._entries)

    def append(self, name: str, raw: dict[str, Any]) -> None:
        """Append a record and return once it is on disk (NOTE [record journal]).

        Raises:
            OSError: if the journal cannot be written or flushed.
        """
        self.write([(name, raw)])
        self.sync()

    def write(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Append records in one write, without flushing them (``sync`` does).

        Raises:
            OSError: if the journal cannot be written.
        """
        stamp = time.time_ns()
        lines = "".join(
            json.dumps({"name": name, "stamp": stamp, "record": raw}, separators=(",", ":")) + "\n"
            for name, raw in records
        )
        with self._lock:
            descriptor = self._descriptor if self._descriptor is not None else self._open()
            data = memoryview(lines.encode("utf-8"))
            while data:  # one write (O_APPEND keeps its lines whole), unless the disk cuts it short
                data = data[os.write(descriptor, data) :]
            for name, raw in records:
                self._entries[name] = (stamp, raw)
            self._written += 1

    def sync(self) -> None:
        """Return once every record written so far is on disk; threads that ask at once share one fsync.

        Raises:
            OSError: if the journal cannot be flushed.
        """
        with self._lock:
            ticket = self._written
            descriptor = self._descriptor
        if descriptor is None:
            return
        with self._sync_lock:
            if self._synced >= ticket:
                return
            with self._lock:
                covered = self._written
            os.fsync(descriptor)
            self._synced = covered

    def close(self) -> None:
        """Close this process's journal."""
        with self._lock:
            if self._descriptor is not None:
                os.close(self._descriptor)
                self._descriptor = None

    def compact(self, migrated: dict[str, dict[str, Any]], records_dir: Path) -> None:
        """Fold finished journals and the per-file ``migrated`` records into the snapshot.

        The caller holds the state lock. The per-file records (in ``records_dir``) are deleted once the
        snapshot holds them; a journal line for the same name is newer and wins over them.

        Raises:
            OSError: if the snapshot cannot be written (the journals are then kept).
        """
        try:
            paths = [self.folder / name for name in os.listdir(self.folder) if name.endswith(".jsonl")]
        except FileNotFoundError:
            paths = []
        dead = []
        for path in paths:
            if path.name != self._own_name and (descriptor := _lock_if_abandoned(path)) is not None:
                dead.append((path, descriptor))
        try:
            self._fold([path for path, _ in dead], migrated, records_dir)
        finally:
            for _, descriptor in dead:
                os.close(descriptor)

    def _fold(self, dead: list[Path], migrated: dict[str, dict[str, Any]], records_dir: Path) -> None:
        if not dead and not migrated:
            return
        merged = _read_snapshot(self._snapshot)
        for name, raw in migrated.items():
            merged.setdefault(name, (0, raw))
        for path in dead:
            for name, stamp, raw in _read_lines(path.read_bytes()):
                if name not in merged or merged[name][0] <= stamp:
                    merged[name] = (stamp, raw)
        records = {name: {"stamp": stamp, "record": raw} for name, (stamp, raw) in merged.items()}
        write_json_atomically(self._snapshot, {"version": _SNAPSHOT_VERSION, "records": records})
        for path in dead:
            path.unlink(missing_ok=True)
        for name in migrated:
            (records_dir / f"{name}.json").unlink(missing_ok=True)
        if dead:
            fsync_folder(self.folder)
        self._snapshot_loaded = False  # read again, with what was folded in
        self._entries.clear()
        self._offsets.clear()
        self._own_merged = False

    def _open(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:  # a compaction may remove a journal between its creation and its lock: make another
            self._own_name = f"journal-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            path = self.folder / self._own_name
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            descriptor = os.open(path, flags, 0o644)
            _lock(descriptor, blocking=True)
            try:
                if os.path.samestat(os.stat(path), os.fstat(descriptor)):
                    break
            except FileNotFoundError:
                pass
            os.close(descriptor)
        self._descriptor = descriptor
        fsync_folder(self.folder)  # the journal's name is durable before any record in it counts
        return descriptor

    def _snapshot_changed(self) -> bool:
        try:
            status = os.stat(self._snapshot)
        except OSError:
            return False
        return (status.st_ino, status.st_mtime_ns) != self._snapshot_identity

    def _load_snapshot(self) -> None:
        try:
            status = os.stat(self._snapshot)
            self._snapshot_identity = (status.st_ino, status.st_mtime_ns)
        except OSError:
            self._snapshot_identity = (0, 0)
        for name, entry in _read_snapshot(self._snapshot).items():
            self._merge(name, *entry)
        self._snapshot_loaded = True

    def _read_journals(self) -> None:
        """Merge the lines appended to the journals since they were last read.

        A miss costs one listing of the folder and a ``stat`` per other process's journal: a journal is
        opened only if it grew, and this process's own is never read back (its lines went into
        ``_entries`` when they were appended).
        """
        try:
            with os.scandir(self.folder) as listing:
                grown = [
                    entry.name
                    for entry in listing
                    if entry.name.endswith(".jsonl") and self._has_grown(entry)
                ]
        except FileNotFoundError:
            return
        for journal in grown:
            offset = self._offsets.get(journal, 0)
            if journal == self._own_name:
                self._own_merged = True
            try:
                with open(os.path.join(self.folder, journal), "rb") as file:
                    file.seek(offset)
                    data = file.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # a line without its newline may still be being written
            self._offsets[journal] = offset + end
            for name, stamp, raw in _read_lines(data[:end]):
                self._merge(name, stamp, raw)

    def _has_grown(self, entry: os.DirEntry[str]) -> bool:
        if entry.name == self._own_name:
            return not self._own_merged
        try:
            return entry.stat().st_size > self._offsets.get(entry.name, 0)
        except OSError:  # removed by a compaction meanwhile
            return False

    def _merge(self, name: str, stamp: int, raw: dict[str, Any]) -> None:
        known = self._entries.get(name)
        if known is None or known[0] <= stamp:
            self._entries[name] = (stamp, raw)


def _read_lines(data: bytes) -> list[tuple[str, int, dict[str, Any]]]:
    entries = []
    for line in data.split(b"\n"):
        try:
            item = json.loads(line)
            entries.append((str(item["name"]), int(item["stamp"]), dict(item["record"])))
        except (ValueError, KeyError, TypeError):
            continue  # a cut or damaged line: its file is checked again, never trusted blindly
    return entries


def _read_snapshot(path: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    try:
        with open(path, "rb") as file:
            data = json.loads(file.read())
        if data.get("version") != _SNAPSHOT_VERSION:
            return {}
        return {
            str(name): (int(item["stamp"]), dict(item["record"])) for name, item in data["records"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _lock(descriptor: int, *, blocking: bool) -> bool:
    """Lock a journal for its writer, held while the writer lives (the system drops it on exit)."""
    if fcntl is None:  # Windows: journals are never compacted
        return not blocking
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _lock_if_abandoned(path: Path) -> int | None:
    """Return a locked descriptor of a journal whose writer is gone, or ``None`` while it lives."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if fcntl is not None and _lock(descriptor, blocking=False):
        return descriptor
    os.close(descriptor)
    return None
