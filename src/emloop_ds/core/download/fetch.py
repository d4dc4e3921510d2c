"""Fetch a dataset's files into ``data_root``: in parallel, each under its lock, skipping complete ones."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from emloop_ds.core.download.checksum import Checksum, hash_file
from emloop_ds.core.download.entry import DownloadEntry, parse_download_entries
from emloop_ds.core.download.extract import default_max_extract_bytes, extract_archive
from emloop_ds.core.download.lock import hold_lock
from emloop_ds.core.download.manifest import Manifest, ManifestRecord
from emloop_ds.core.download.progress import FileProgress, NoProgress, Progress
from emloop_ds.core.download.transfer import RetryPolicy, download_file
from emloop_ds.core.errors import ConfigError, DownloadError

__all__ = ["STATUSES", "FileResult", "fetch_dataset", "raise_failures"]

STATUSES = ("downloaded", "resumed", "extracted", "already complete", "failed")
"""What happened to a file: fetched whole, fetched keeping earlier bytes, only (re-)extracted, nothing
needed, or failed."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class FileResult:
    """What happened to one entry of ``download_urls``."""

    filename: str
    url: str
    status: str
    elapsed_s: float
    size_bytes: int | None = None
    checksum: Checksum | None = None
    """The file's checksum (sha256 unless the config asked for md5), ready to be pinned in the config."""
    error: DownloadError | None = None


@dataclass(frozen=True)
class _Settings:
    root: Path
    manifest: Manifest
    timeout_s: float
    force: bool
    progress: Progress
    retry: RetryPolicy | None
    cancel: threading.Event


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
    """Download, verify and extract every entry of ``download_urls`` into ``data_root``, ``jobs`` at a time.

    A file that fails is reported in its result rather than raised, so that the others finish.

    Raises:
        ConfigError: if an entry, ``jobs`` or ``timeout_s`` is invalid (before anything is fetched).
        DownloadError: if ``data_root`` cannot be created.
    """
    entries = parse_download_entries(download_urls)
    if jobs < 1 or timeout_s <= 0:
        raise ConfigError(f"jobs must be at least 1 and timeout_s above 0, got {jobs} and {timeout_s}")
    root = Path(data_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create data_root {root}: {exc.strerror or exc}; check data_root in the config"
        ) from exc
    cancel = threading.Event()
    settings = _Settings(root, Manifest(root), timeout_s, force, progress or NoProgress(), retry, cancel)
    return _run_parallel(lambda entry: _fetch_entry(entry, settings), entries, jobs, cancel)


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


def _fetch_entry(entry: DownloadEntry, settings: _Settings) -> FileResult:
    started_s = time.monotonic()
    progress = settings.progress.open_file(entry.filename)
    lock_path = settings.manifest.state_dir / "locks" / f"{entry.filename}.lock"
    try:
        with hold_lock(
            lock_path,
            on_wait=lambda: progress.note("waiting for another process that is downloading it"),
            cancel=settings.cancel,
        ):
            status, record = _fetch_locked(entry, settings, progress)
    except DownloadError as exc:
        return FileResult(entry.filename, entry.url, "failed", time.monotonic() - started_s, error=exc)
    except OSError as exc:  # the lock file cannot be made
        error = DownloadError(
            f"cannot lock {lock_path}: {exc.strerror or exc}; check the permissions of data_root"
        )
        error.__cause__ = exc
        return FileResult(entry.filename, entry.url, "failed", time.monotonic() - started_s, error=error)
    finally:
        progress.close()
    elapsed_s = time.monotonic() - started_s
    return FileResult(entry.filename, entry.url, status, elapsed_s, record.size_bytes, record.checksum)


def _fetch_locked(
    entry: DownloadEntry, settings: _Settings, progress: FileProgress
) -> tuple[str, ManifestRecord]:
    """Do what the file still needs; the caller holds its lock."""
    target = settings.root / entry.filename
    record = None if settings.force else _complete_record(entry, target, settings.manifest)
    if record is not None and (record.extracted or not entry.extract):
        return "already complete", record
    status = "extracted"
    if record is None:
        outcome = download_file(
            entry.url,
            target,
            checksum=entry.checksum,
            timeout_s=settings.timeout_s,
            retry=settings.retry,
            progress=progress,
            cancel=settings.cancel,
            resume=not settings.force,
        )
        record = settings.manifest.save(entry.filename, entry.url, outcome.checksum, target, extracted=False)
        status = "resumed" if outcome.resumed else "downloaded"
    if entry.extract:
        extract_archive(target, settings.root, max_bytes=default_max_extract_bytes(target.stat().st_size))
        record = settings.manifest.save(entry.filename, entry.url, record.checksum, target, extracted=True)
    return status, record


def _complete_record(entry: DownloadEntry, target: Path, manifest: Manifest) -> ManifestRecord | None:
    """Return the record of a complete file: from the manifest, or by adopting a file with the right hash."""
    record = manifest.find(entry.filename, entry.url, entry.checksum, target)
    if record is not None or entry.checksum is None or not target.is_file():
        return record
    try:
        actual = hash_file(target, entry.checksum.algorithm)
    except OSError:
        return None
    if actual != entry.checksum:
        return None
    return manifest.save(entry.filename, entry.url, actual, target, extracted=False)


def _run_parallel(
    function: Callable[[T], R], items: Sequence[T], jobs: int, cancel: threading.Event
) -> list[R]:
    """Call ``function`` on every item from ``jobs`` threads; return the results in the items' order.

    The threads are daemons: after Ctrl-C the main thread sets ``cancel`` and leaves at once instead of
    waiting for a stalled transfer to time out; every file written is crash-safe, so nothing is lost.
    An exception (a bug: failures are results) is handed to the caller and raised there.
    """
    todo: queue.SimpleQueue[tuple[int, T]] = queue.SimpleQueue()
    for index, item in enumerate(items):
        todo.put((index, item))
    done: queue.SimpleQueue[tuple[int, R | None, BaseException | None]] = queue.SimpleQueue()

    def work() -> None:
        while not cancel.is_set():
            try:
                index, item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((index, function(item), None))
            except BaseException as exc:  # handed to the consumer below
                done.put((index, None, exc))

    for number in range(min(jobs, len(items))):
        threading.Thread(target=work, name=f"emloop-ds-download-{number}", daemon=True).start()
    results: dict[int, R] = {}
    try:
        for _ in items:
            index, result, error = done.get()
            if error is not None:
                raise error
            results[index] = result  # type: ignore[assignment]
    except BaseException:
        cancel.set()
        raise
    return [results[index] for index in range(len(items))]
