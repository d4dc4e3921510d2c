"""Put downloaded files in place in groups: their renames, one journal write of their records, and one
flush of each folder and of the journal, made by one thread for every file that finished meanwhile.

NOTE [group commit]: a download thread writes and verifies a part file, flushes its bytes to disk (an
fsync, outside its transfer slot: NOTE [no syncfs] in ``durable.py``), hands it to the run's
``Committer`` and goes on with its next file. The committer takes every part handed over since its last
group and, in this order:

1. renames each part to its target;
2. appends the group's records to the journal in one write (NOTE [record journal]);
3. flushes the renames and the records: one fsync of each folder the files went to, and one of the
   journal;
4. reports the files as complete and gives back their locks.

What holds after a crash at any point: a file is recorded only after its bytes were on disk, so a
record never names a file whose bytes were lost. A record that reached the disk while its rename did not
(step 3 flushes both, in no set order) names a file that is missing or older: the record vouches only
for a file of its size and modification time (``state.py``), so that file is fetched again or its part
resumed. A file renamed but not recorded has no record: it is hashed (with a checksum) or fetched again.
A part not yet renamed is resumed. So nothing recorded is ever fetched again, and no recorded file is
ever short.

With 8 jobs of 4 KB files a group holds ~10 files: two fsyncs per group instead of two per file, one
``write`` of the journal instead of one per file, and no download thread ever waits for them.
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
from emloop_ds.core.download.durable import fsync_folder
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
        placed = []
        for handover in group:  # step 1
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
                records = self._store.write_records(  # step 2
                    [(handover.filename, handover.url, handover.checksum) for handover in placed]
                )
                for folder in {handover.target.parent for handover in placed}:  # step 3
                    fsync_folder(folder)
                self._store.journal.sync()
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

    def _finish(self, group: list[Handover]) -> None:
        for handover in group:
            handover.done.set()
            if handover.on_done is not None:
                try:
                    handover.on_done(handover)
                except BaseException as exc:  # a bug: raised by close(), the others are still reported
                    self._failure = self._failure or exc
