"""Fetch a dataset's files into ``data_root``: in parallel, each under its lock, skipping complete ones.

A run first checks every file against its record without a lock or a request (the no-op path: one small
read and one ``stat`` per file, see ``state.py``); only files that need work go to the worker threads,
which re-check under the file's lock, then download (from the entry's mirrors in order) and verify. A
verified file goes to the run's committer, which flushes, renames and records files in groups
(NOTE [group commit] in ``commit.py``) and then reports them and gives back their locks, while the thread
goes on with its next file; an archive's thread waits for its commit, then extracts. Files go to the
threads in lock-bucket order (NOTE [lock buckets]). There are twice as many threads as ``jobs``: ``jobs``
slots bound the transfers (NOTE [transfer slots] in ``transfer.py``) and ``jobs`` other slots bound the
local work (hashing a file found in place, extracting). HTTP machinery (``requests``) is imported only
when a file needs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emloop_ds.core.download.checksum import Checksum, hash_file
from emloop_ds.core.download.commit import Committer, Handover
from emloop_ds.core.download.entry import DownloadEntry, parse_download_entries
from emloop_ds.core.download.lock import FileLocks, bucket_of, hold_lock
from emloop_ds.core.download.parallel import run_parallel
from emloop_ds.core.download.progress import FileProgress, NoProgress, Progress
from emloop_ds.core.download.retry import RetryPolicy
from emloop_ds.core.download.state import FileRecord, StateStore
from emloop_ds.core.errors import ConfigError, DownloadCancelledError, DownloadError

if TYPE_CHECKING:  # transfer (requests) and extract (for archives) are imported where they are needed
    from emloop_ds.core.download.extract import ExtractedFile
    from emloop_ds.core.download.transfer import Client

__all__ = ["STATUSES", "FileResult", "fetch_dataset", "open_data_root", "raise_failures"]

_URL_TAG = re.compile(r"\.[0-9a-f]{8}")

STATUSES = ("downloaded", "resumed", "extracted", "restored", "already complete", "failed")
"""What happened to a file: fetched whole, fetched keeping earlier bytes, only (re-)extracted, extracted
files that were missing restored from the kept archive, nothing needed, or failed."""


@dataclass(frozen=True)
class FileResult:
    """What happened to one entry of ``download_urls``."""

    filename: str
    url: str
    """The URL the file came from (the mirror that worked), else the entry's first URL."""
    status: str
    elapsed_s: float
    size_bytes: int | None = None
    checksum: Checksum | None = None
    """The file's checksum (sha256 unless the config asked for md5), ready to be pinned in the config."""
    error: DownloadError | None = None
    warnings: tuple[str, ...] = ()
    """One line per mirror that failed before another one succeeded."""


@dataclass
class _Run:
    store: StateStore
    jobs: int
    timeout_s: float
    force: bool
    progress: Progress
    retry: RetryPolicy | None
    cancel: threading.Event = field(default_factory=threading.Event)
    locks: FileLocks = field(init=False)
    committer: Committer = field(init=False)
    local_slots: threading.Semaphore = field(init=False)
    """Bound the files hashed or extracted at once to ``jobs``."""
    _client: Client | None = None
    _client_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.locks = FileLocks(self.store.state_dir / "locks", self.cancel)
        self.local_slots = threading.Semaphore(self.jobs)
        self.committer = Committer(self.store, max_waiting=4 * self.jobs)

    def client(self) -> Client:
        """Open the run's HTTP client on first need, so runs with nothing to fetch never import requests."""
        with self._client_lock:
            if self._client is None:
                from emloop_ds.core.download.transfer import open_client

                self._client = open_client(self.jobs, self.timeout_s, self.retry, self.cancel)
            return self._client

    def close(self) -> None:
        try:
            self.committer.close()  # what was handed over is put in place, even when interrupted
        finally:
            if self._client is not None:
                self._client.close()
            self.store.journal.close()


def open_data_root(data_root: str | Path) -> StateStore:
    """Create ``data_root`` if needed and return its state, migrated and compacted.

    Raises:
        DownloadError: if ``data_root`` cannot be created or the manifest cannot be migrated.
    """
    root = Path(data_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create data_root {root}: {exc.strerror or exc}; check data_root in the config"
        ) from exc
    store = StateStore(root)
    with hold_lock(store.state_dir / "locks" / "migrate.lock"):
        if store.has_manifest():
            store.migrate_manifest()
        store.compact()  # NOTE [record journal]: once per run, so journals do not grow across runs
    return store


def fetch_dataset(
    data_root: str | Path,
    download_urls: Any,
    *,
    jobs: int = 4,
    timeout_s: float = 30.0,
    force: bool = False,
    progress: Progress | None = None,
    retry: RetryPolicy | None = None,
) -> list[FileResult]:
    """Download, verify and extract every entry of ``download_urls`` into ``data_root``.

    At most ``jobs`` transfers run at once, and at most ``jobs`` files are hashed or extracted at once;
    each file is flushed and recorded while the next one is on the wire (NOTE [transfer slots]). A file
    that fails is reported in its result rather than raised, so that the others finish.

    Raises:
        ConfigError: if an entry, ``jobs`` or ``timeout_s`` is invalid (before anything is fetched).
        DownloadError: if ``data_root`` cannot be created.
    """
    entries = parse_download_entries(download_urls)
    if jobs < 1 or timeout_s <= 0:
        raise ConfigError(f"jobs must be at least 1 and timeout_s above 0, got {jobs} and {timeout_s}")
    store = open_data_root(data_root)
    progress = progress or NoProgress()
    run = _Run(store, jobs, timeout_s, force, progress, retry)
    try:
        return _fetch_all(entries, run)
    finally:
        run.close()


def _fetch_all(entries: Sequence[DownloadEntry], run: _Run) -> list[FileResult]:
    """Fetch what ``entries`` still need; the caller closes ``run``."""
    store, progress, force, jobs = run.store, run.progress, run.force, run.jobs
    progress.start_run(len(entries))
    results: list[FileResult | None] = [None] * len(entries)
    todo = []
    store.journal.refresh()  # once: a miss below needs no new look at the journals (the threads look)
    for index, entry in enumerate(entries):
        complete = None if force else _complete_result(entry, store)
        if complete is None:
            todo.append(index)
        else:
            results[index] = complete
            progress.finish_file(entry.filename, complete.status)
    if todo:
        _remove_first_version_parts(store.data_root)
    todo.sort(key=lambda index: bucket_of(entries[index].filename))  # NOTE [lock buckets]
    done = run_parallel(lambda index: _fetch_entry(entries[index], run), todo, 2 * jobs, run.cancel)
    run.committer.close()  # every file handed over is in place (or failed) and reported
    for index, result in zip(todo, done, strict=True):
        results[index] = result.result if isinstance(result, _Pending) else result
    progress.end_run()
    return [result for result in results if result is not None]


def raise_failures(results: Sequence[FileResult]) -> None:
    """Raise the error of a failed file, or one error listing all failures if there are several.

    Raises:
        DownloadError: if any file failed.
    """
    failures = [result.error for result in results if result.error is not None]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        reasons = "; ".join(str(error) for error in failures)
        raise DownloadError(f"{len(failures)} of {len(results)} files failed: {reasons}") from failures[0]


def _complete_result(entry: DownloadEntry, store: StateStore) -> FileResult | None:
    """Return the result of a file that needs nothing, judged by its record alone (no lock, no request)."""
    record = store.find(entry.filename, entry.checksum, refresh=False)
    if record is None or (entry.extract and not record.extracted):
        return None
    if entry.extract:
        from emloop_ds.core.download.extract import find_damaged

        if find_damaged(store.data_root, record.extracted_files):
            return None
    return FileResult(entry.filename, record.url, "already complete", 0.0, record.size_bytes, record.checksum)


@dataclass
class _Pending:
    """A file handed to the committer (NOTE [group commit]); its result is set once it is in place."""

    result: FileResult | None = None


def _fetch_entry(entry: DownloadEntry, run: _Run) -> FileResult | _Pending:
    started_s = time.monotonic()
    progress = run.progress.open_file(entry.filename)
    try:
        try:
            run.locks.acquire(
                entry.filename,
                on_wait=lambda: progress.note("waiting for another process that is downloading it"),
            )
        except OSError as exc:  # the lock file cannot be made
            raise DownloadError(
                f"cannot lock {run.locks.path(entry.filename)}: {exc.strerror or exc}; "
                "check the permissions of data_root"
            ) from exc
        try:
            done = _fetch_locked(entry, run, progress, started_s)
        except BaseException:
            run.locks.release(entry.filename)
            raise
        if isinstance(done, _Pending):
            return done  # the committer reports it and gives back its lock
        run.locks.release(entry.filename)
    except DownloadError as exc:
        result = FileResult(entry.filename, entry.url, "failed", time.monotonic() - started_s, error=exc)
    else:
        status, record, warnings = done
        elapsed_s = time.monotonic() - started_s
        result = FileResult(
            entry.filename, record.url, status, elapsed_s, record.size_bytes, record.checksum, None, warnings
        )
    finally:
        progress.close()
    run.progress.finish_file(entry.filename, result.status)
    return result


def _fetch_locked(
    entry: DownloadEntry, run: _Run, progress: FileProgress, started_s: float
) -> tuple[str, FileRecord, tuple[str, ...]] | _Pending:
    """Do what the file still needs; the caller holds its lock, which a ``_Pending`` result takes over."""
    record = None if run.force else _known_record(entry, run)
    status = "already complete"
    warnings: tuple[str, ...] = ()
    if record is None:
        target = run.store.data_root / entry.filename
        url, outcome, warnings = _download_from_mirrors(entry, target, run, progress)
        status = "resumed" if outcome.resumed else "downloaded"
        assert outcome.part is not None
        handover = Handover(
            entry.filename,
            url,
            outcome.part,
            target,
            outcome.checksum,
            outcome.has_origin_file,
        )
        if not entry.extract:  # NOTE [group commit]: the thread goes on with its next file
            pending = _Pending()
            handover.on_done = lambda done: _report(done, pending, run, status, warnings, started_s)
            run.committer.hand_over(handover)
            return pending
        run.committer.hand_over(handover)
        record = handover.wait()
    if not entry.extract:
        return status, record, warnings
    from emloop_ds.core.download.extract import find_damaged

    if not record.extracted:
        files = _extract(entry, run)
        record = run.store.save(
            entry.filename, record.url, record.checksum, extracted=True, extracted_files=files
        )
        return ("extracted" if status == "already complete" else status), record, warnings
    damaged = find_damaged(run.store.data_root, record.extracted_files)
    if damaged:  # restore them from the kept archive; were it gone, the record would not vouch for it
        files = _extract(entry, run, only=[file.path for file in damaged])
        record = run.store.save(
            entry.filename, record.url, record.checksum, extracted=True, extracted_files=files
        )
        return "restored", record, warnings
    return status, record, warnings


def _report(
    handover: Handover,
    pending: _Pending,
    run: _Run,
    status: str,
    warnings: tuple[str, ...],
    started_s: float,
) -> None:
    """Report a file the committer put in place (or failed to), and give back its lock."""
    elapsed_s = time.monotonic() - started_s
    record = handover.record
    if record is None:
        result = FileResult(handover.filename, handover.url, "failed", elapsed_s, error=handover.error)
    else:
        result = FileResult(
            handover.filename,
            record.url,
            status,
            elapsed_s,
            record.size_bytes,
            record.checksum,
            None,
            warnings,
        )
    run.locks.release(handover.filename)
    pending.result = result
    run.progress.finish_file(handover.filename, result.status)


def _known_record(entry: DownloadEntry, run: _Run) -> FileRecord | None:
    """Return the record of a complete file: its own, or a new one adopting a file with the right hash."""
    store = run.store
    record = store.find(entry.filename, entry.checksum)
    target = store.data_root / entry.filename
    if record is not None or entry.checksum is None or not target.is_file():
        return record
    try:
        with run.local_slots:
            actual = hash_file(target, entry.checksum.algorithm)
    except OSError:
        return None
    if actual != entry.checksum:
        return None
    return store.save(entry.filename, entry.url, actual, extracted=False)


def _download_from_mirrors(
    entry: DownloadEntry, target: Path, run: _Run, progress: FileProgress
) -> tuple[str, Any, tuple[str, ...]]:
    """Download from the entry's mirrors in order; return the URL that worked, the outcome and warnings.

    A mirror is left for the next one when it fails after its own retries (404 or 403 at once, an
    unresolvable host, connection errors and 5xx after retrying, a checksum mismatch).
    """
    from emloop_ds.core.download.transfer import download_file

    failures: list[tuple[str, DownloadError]] = []
    for url in entry.urls:
        try:
            outcome = download_file(
                url,
                target,
                client=run.client(),
                checksum=entry.checksum,
                progress=progress,
                resume=not run.force,
                put_in_place=False,
            )
        except DownloadCancelledError:
            raise
        except DownloadError as exc:
            failures.append((url, exc))  # reported once, as a warning, if a later mirror succeeds
            continue
        warnings = tuple(
            f"{entry.filename}: mirror {failed} failed ({error}); downloaded from {url}"
            for failed, error in failures
        )
        return url, outcome, warnings
    if len(failures) == 1:
        raise failures[0][1]
    reasons = "; ".join(str(error) for _, error in failures)
    raise DownloadError(
        f"cannot download {entry.filename} from any of its {len(failures)} mirrors: {reasons}"
    ) from failures[-1][1]


def _extract(entry: DownloadEntry, run: _Run, only: list[str] | None = None) -> list[ExtractedFile]:
    """Extract the entry's archive (or just the members ``only``) into ``data_root``; return its files."""
    from emloop_ds.core.download.extract import default_max_extract_bytes, extract_archive

    data_root = run.store.data_root
    archive = data_root / entry.filename
    max_bytes = entry.max_extract_bytes
    if max_bytes is None:
        max_bytes = default_max_extract_bytes(archive.stat().st_size)
    with run.local_slots:
        if run.cancel.is_set():  # cancelled while waiting for the slot
            raise DownloadCancelledError(f"interrupted before extracting {entry.filename}")
        return extract_archive(archive, data_root, max_bytes=max_bytes, only=only)


def _remove_first_version_parts(data_root: Path) -> None:
    """Delete the first version's ``<name>.<url-tag>.part`` files (origin unknown); one scan per run."""
    with os.scandir(data_root) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith(".part") and _URL_TAG.fullmatch(name[-14:-5]):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
