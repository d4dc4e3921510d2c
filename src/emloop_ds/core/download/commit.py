"""Put downloaded files in place in groups: one flush of their bytes, their renames, one journal write of
their records and one flush of both, made by one thread for every file that finished meanwhile.

NOTE [group commit]: a download thread that has written and verified a part file hands it to the run's
``Committer`` and goes on with its next file; it does not wait for the disk. The committer takes every
part handed over since its last group and, in this order:

1. flushes their bytes to disk: one ``syncfs`` of the file system holding them (Linux; a part above
   ``GROUP_DATA_FLUSH_MAX_BYTES``, or any part where there is no ``syncfs``, was fsynced alone by its
   thread, NOTE [group data flush]);
2. renames each part to its target;
3. appends the group's records to the journal in one write (NOTE [record journal]);
4. flushes the renames and the records: one more ``syncfs`` (else an fsync of each folder and of the
   journal);
5. reports the files as complete and gives back their locks.

What holds after a crash at any point: a file is recorded only after step 1, so a record never names a
file whose bytes were not on disk. A record flushed before its rename (step 4 writes both, in no set
order) names a file that is missing or older: the record vouches only for a file of its size and
modification time (``state.py``), so that file is fetched again or its part resumed. A file renamed but
not recorded has no record: it is hashed (with a checksum) or fetched again. A part not yet renamed is
resumed. So nothing recorded is ever fetched again, and no recorded file is ever short.

With 8 jobs of 4 KB files this makes two flushes per group instead of three per file, and the download
threads never block on the disk, so no more threads than transfers are needed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emloop_ds.core.download.checksum import Checksum
from emloop_ds.core.download.durable import fsync_folder, has_syncfs, syncfs
from emloop_ds.core.download.state import FileRecord, StateStore
from emloop_ds.core.errors import DownloadCancelledError, DownloadError

__all__ = ["Committer", "Handover"]

_GROUP_MAX = 512
"""The most files put in place by one group (their records are one write)."""


@dataclass
class Handover:
    """A verified part file waiting to be put in place and recorded, and then what became of it."""

    filename: str
    url: str
    part: Path
    target: Path
    checksum: Checksum
    is_flushed: bool
    has_origin_file: bool
    on_done: Callable[[Handover], None] | None = None
    """Called by the committer once the file is in place and recorded, or has failed."""
    record: FileRecord | None = None
    error: DownloadError | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> FileRecord:
        """Return the file's record once it is in place.

        Raises:
            DownloadError: if it could not be put in place or recorded.
        """
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.record is not None
        return self.record


class Committer:
    """The thread that puts a run's downloaded files in place, in groups (NOTE [group commit])."""

    def __init__(self, store: StateStore, max_waiting: int) -> None:
        """Record into ``store``; a hand-over waits while ``max_waiting`` files are waiting already."""
        self._store = store
        self._waiting: queue.Queue[Handover | None] = queue.Queue(max_waiting)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._failure: BaseException | None = None
        self.groups = 0
        """How many groups were committed (for tests and benchmarks)."""

    def hand_over(self, handover: Handover) -> None:
        """Queue a verified part to be put in place; returns at once unless many are waiting.

        Raises:
            DownloadCancelledError: if the committer was closed (the run is over or interrupted); the part
                is kept for resuming.
        """
        with self._start_lock:
            if self._closed:
                raise DownloadCancelledError(f"interrupted; {handover.part} is kept for resuming")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="emloop-ds-commit", daemon=True)
                self._thread.start()
        self._waiting.put(handover)

    def close(self) -> None:
        """Put in place what was handed over, then stop the thread."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._waiting.put(None)
            thread.join()
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < _GROUP_MAX:
                try:
                    handover = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if handover is None:
                    stop = True
                    break
                group.append(handover)
            try:
                self._commit(group)
            except BaseException as exc:  # a bug: fail the group rather than leave its threads waiting
                self._failure = self._failure or exc
                for handover in group:
                    if not handover.done.is_set():
                        handover.error = DownloadError(f"cannot put {handover.filename} in place: {exc!r}")
                        handover.done.set()
            self.groups += 1
            if stop:
                return

    def _commit(self, group: list[Handover]) -> None:
        try:  # step 1
            _syncfs_folders({handover.part.parent for handover in group if not handover.is_flushed})
        except OSError as exc:
            for handover in group:
                handover.error = DownloadError(
                    f"cannot write {handover.part}: {exc.strerror or exc}; free disk space or check the "
                    "permissions of data_root, then run again to resume"
                )
            self._finish(group)
            return
        placed = []
        for handover in group:  # step 2
            try:
                os.replace(handover.part, handover.target)
            except OSError as exc:
                handover.error = DownloadError(
                    f"cannot move {handover.part} to {handover.target}: {exc.strerror}; check data_root"
                )
            else:
                placed.append(handover)
        if placed:
            try:
                records, device = self._store.write_records(  # step 3
                    [(handover.filename, handover.url, handover.checksum) for handover in placed]
                )
                self._flush_names(placed, device)  # step 4
            except DownloadError as exc:
                for handover in placed:
                    handover.error = exc
            except OSError as exc:
                for handover in placed:
                    handover.error = DownloadError(
                        f"cannot flush {handover.target} to disk: {exc.strerror or exc}; check data_root, "
                        "then run again"
                    )
            else:
                for handover, record in zip(placed, records, strict=True):
                    handover.record = record
                    if handover.has_origin_file:
                        from emloop_ds.core.download.part import remove_part  # brings requests: lazily

                        with contextlib.suppress(OSError):
                            remove_part(handover.part)  # its origin record; the part itself was renamed
        self._finish(group)

    def _flush_names(self, placed: list[Handover], journal_device: int) -> None:
        """Make the renames of ``placed`` and the journal's new lines durable (step 4)."""
        folders = {handover.target.parent for handover in placed}
        if not has_syncfs():
            for folder in folders:
                fsync_folder(folder)
            self._store.journal.sync()
        elif journal_device not in _syncfs_folders(folders):  # a state folder on another file system
            self._store.journal.sync()

    def _finish(self, group: list[Handover]) -> None:
        for handover in group:
            handover.done.set()
            if handover.on_done is not None:
                try:
                    handover.on_done(handover)
                except BaseException as exc:  # a bug: raised by close(), the others are still reported
                    self._failure = self._failure or exc


def _syncfs_folders(folders: set[Path]) -> set[int]:
    """Run one ``syncfs`` for each file system holding one of ``folders``; return their devices."""
    devices: dict[int, Path] = {}
    for folder in folders:
        devices.setdefault(os.stat(folder).st_dev, folder)
    for folder in devices.values():
        descriptor = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syncfs(descriptor)
        finally:
            os.close(descriptor)
    return set(devices)
