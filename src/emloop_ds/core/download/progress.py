"""Report download progress through a small interface: nothing for tests and scripts, tqdm bars for people
at a terminal, and a line every few seconds for logs.

A run calls ``start_run`` once, ``open_file`` for each file that needs work (its ``FileProgress`` then
reports bytes and notes), ``finish_file`` for every file, complete ones included, and ``end_run`` last.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = ["OVERALL_BAR_ABOVE", "FileProgress", "LineProgress", "NoProgress", "Progress", "TqdmProgress"]

OVERALL_BAR_ABOVE = 20
"""With more files than this, bars show one overall bar plus bars for the files in flight only."""


class FileProgress(Protocol):
    """Receive the progress of one file; every method is called from the thread downloading it."""

    def start(self, total_bytes: int | None, done_bytes: int) -> None:
        """Begin a transfer attempt of ``total_bytes`` (``None`` if unknown), ``done_bytes`` already there."""

    def advance(self, n_bytes: int) -> None:
        """Count ``n_bytes`` more bytes received."""

    def note(self, message: str) -> None:
        """Tell the user something about this file, such as a retry or a wait for a lock."""

    def close(self) -> None:
        """End the reporting of this file."""


class Progress(Protocol):
    """Report a run over many files; may be called from several threads."""

    def start_run(self, total_files: int) -> None:
        """Begin a run over ``total_files`` files; called once, before anything else."""

    def open_file(self, name: str) -> FileProgress:
        """Start reporting the file ``name``, which needs work (a download, extraction or restore)."""

    def finish_file(self, name: str, status: str) -> None:
        """Count the file ``name`` as done with ``status`` (``already complete``, ``failed``...)."""

    def end_run(self) -> None:
        """End the run; called once, after every file."""


class NoProgress:
    """Report nothing: the default for library calls in tests and scripts."""

    def start_run(self, total_files: int) -> None:
        """Ignore the start of the run."""

    def open_file(self, name: str) -> FileProgress:
        """Return a reporter that ignores everything."""
        return self

    def finish_file(self, name: str, status: str) -> None:
        """Ignore a finished file."""

    def end_run(self) -> None:
        """Ignore the end of the run."""

    def start(self, total_bytes: int | None, done_bytes: int) -> None:
        """Ignore the start of a transfer."""

    def advance(self, n_bytes: int) -> None:
        """Ignore received bytes."""

    def note(self, message: str) -> None:
        """Ignore a message."""

    def close(self) -> None:
        """Do nothing."""


class _RunCounts:
    """Files done and bytes received in a run, counted from several threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.total_files = 0
        self.done_files = 0
        self.n_bytes = 0
        self.started_s = clock()

    def rate_bytes_s(self) -> float:
        elapsed_s = self.clock() - self.started_s
        return self.n_bytes / elapsed_s if elapsed_s > 0 else 0.0

    def eta_s(self) -> float | None:
        if not self.done_files or self.done_files >= self.total_files:
            return None
        elapsed_s = self.clock() - self.started_s
        return elapsed_s / self.done_files * (self.total_files - self.done_files)


class TqdmProgress:
    """Show tqdm bars; tqdm.auto makes widgets in notebooks.

    With more than ``OVERALL_BAR_ABOVE`` files, one overall bar counts files done of the total, with the
    bytes received and their rate; bars for single files appear only while their bytes are in flight and
    vanish when the last byte has arrived, so there is at most one per job (a file whose size the server
    did not send keeps its bar until it is done). A file's bar appears only once it has taken ``delay_s``
    seconds, so quick files cause no flicker and a run that only finds complete files
    shows no file bars.
    """

    def __init__(
        self,
        file: TextIO | None = None,
        delay_s: float = 0.5,
        leave: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Write to ``file`` (standard error at the time of writing if ``None``)."""
        self._file = file
        self._delay_s = delay_s
        self._leave = leave
        self._clock = clock
        self._lock = threading.Lock()
        self._tqdm: Any = None
        self._counts = _RunCounts(clock)
        self._overall: Any = None

    def start_run(self, total_files: int) -> None:
        """Show the overall bar if there are more than ``OVERALL_BAR_ABOVE`` files."""
        self._counts = _RunCounts(self._clock)
        self._counts.total_files = total_files
        if total_files > OVERALL_BAR_ABOVE:
            self._overall = self.tqdm_class()(
                desc="files", total=total_files, unit="file", leave=self._leave, file=self.stream()
            )

    def open_file(self, name: str) -> FileProgress:
        """Start reporting the file ``name``; its bar is created lazily."""
        return _TqdmFileProgress(self, name)

    def finish_file(self, name: str, status: str) -> None:
        """Advance the overall bar."""
        with self._counts.lock:
            self._counts.done_files += 1
        if self._overall is not None:
            self._overall.set_postfix_str(self._bytes_postfix(), refresh=False)
            self._overall.update(1)

    def end_run(self) -> None:
        """Close the overall bar."""
        if self._overall is not None:
            self._overall.set_postfix_str(self._bytes_postfix(), refresh=False)
            self._overall.close()
            self._overall = None

    def count_bytes(self, n_bytes: int) -> None:
        """Add received bytes to the run's count."""
        with self._counts.lock:
            self._counts.n_bytes += n_bytes

    def stream(self) -> TextIO:
        """Return the stream that bars and notes go to."""
        return self._file if self._file is not None else sys.stderr

    def make_bar(self, name: str, total_bytes: int | None, done_bytes: int) -> Any:
        """Create a byte-counting bar for ``name``."""
        return self.tqdm_class()(
            desc=name,
            total=total_bytes,
            initial=done_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=self._leave and self._overall is None,
            file=self.stream(),
            dynamic_ncols=True,
        )

    def tqdm_class(self) -> Any:
        """Import tqdm.auto's class once, on first need."""
        with self._lock:
            if self._tqdm is None:
                from tqdm.auto import tqdm

                self._tqdm = tqdm
            return self._tqdm

    def write(self, line: str) -> None:
        """Print ``line`` without garbling the bars shown (if any)."""
        if self._tqdm is not None:
            self._tqdm.write(line, file=self.stream())
        else:
            with self._lock:
                print(line, file=self.stream(), flush=True)

    def has_overall_bar(self) -> bool:
        """Tell whether the run shows the overall bar (and file bars only for files in flight)."""
        return self._overall is not None

    def is_due(self, started_s: float) -> bool:
        """Tell whether a file started at ``started_s`` has run long enough to deserve a bar."""
        return self._clock() - started_s >= self._delay_s

    def now(self) -> float:
        """Read the clock."""
        return self._clock()

    def _bytes_postfix(self) -> str:
        return f"{format_bytes(self._counts.n_bytes)}, {format_bytes(int(self._counts.rate_bytes_s()))}/s"


class _TqdmFileProgress:
    """One file's bar, created once the file has taken the parent's delay."""

    def __init__(self, parent: TqdmProgress, name: str) -> None:
        self._parent = parent
        self._name = name
        self._started_s = parent.now()
        self._total_bytes: int | None = None
        self._done_bytes = 0
        self._bar: Any = None

    def start(self, total_bytes: int | None, done_bytes: int) -> None:
        self._total_bytes = total_bytes
        self._done_bytes = done_bytes
        if self._bar is not None:
            self._bar.reset(total=total_bytes)
            self._bar.update(done_bytes)

    def advance(self, n_bytes: int) -> None:
        self._done_bytes += n_bytes
        self._parent.count_bytes(n_bytes)
        # Under the overall bar, a file has a bar only while its bytes are on the wire: flushing, recording
        # and extracting it happen after its transfer slot is given back, while the next file's bar may
        # appear, and bars stay at most one per job.
        is_received = self._total_bytes is not None and self._done_bytes >= self._total_bytes
        if self._parent.has_overall_bar() and is_received:
            self.close()
        elif self._bar is not None:
            self._bar.update(n_bytes)
        elif self._parent.is_due(self._started_s):
            self._bar = self._parent.make_bar(self._name, self._total_bytes, self._done_bytes)

    def note(self, message: str) -> None:
        self._parent.write(f"{self._name}: {message}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LineProgress:
    """Print a progress line at most every ``interval_s`` seconds, for logs where bars would be noise.

    A line reads ``progress: 120 of 2000 files, 45.3 MiB, 12.1 MiB/s, ETA 2m 10s``. A run shorter than the
    interval prints none. Notes (retries, waits) are printed at once, one line each.
    """

    def __init__(
        self, file: TextIO | None = None, interval_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Write to ``file`` (standard error at the time of writing if ``None``)."""
        self._file = file
        self._interval_s = interval_s
        self._clock = clock
        self._counts = _RunCounts(clock)
        self._last_s = self._counts.started_s

    def start_run(self, total_files: int) -> None:
        """Start counting."""
        self._counts = _RunCounts(self._clock)
        self._counts.total_files = total_files
        self._last_s = self._counts.started_s

    def open_file(self, name: str) -> FileProgress:
        """Return the reporter of the file ``name``."""
        return _LineFileProgress(self, name)

    def finish_file(self, name: str, status: str) -> None:
        """Count a finished file."""
        with self._counts.lock:
            self._counts.done_files += 1
        self._print_if_due()

    def end_run(self) -> None:
        """Print nothing more: the command prints its summary."""

    def count_bytes(self, n_bytes: int) -> None:
        """Add received bytes to the run's count."""
        with self._counts.lock:
            self._counts.n_bytes += n_bytes
        self._print_if_due()

    def write(self, line: str) -> None:
        """Print one line."""
        print(line, file=self._file if self._file is not None else sys.stderr, flush=True)

    def _print_if_due(self) -> None:
        counts = self._counts
        with counts.lock:
            now_s = self._clock()
            if now_s - self._last_s < self._interval_s:
                return
            self._last_s = now_s
            eta_s = counts.eta_s()
            eta = "unknown" if eta_s is None else format_duration(eta_s)
            rate = format_bytes(int(counts.rate_bytes_s()))
            line = (
                f"progress: {counts.done_files} of {counts.total_files} files, "
                f"{format_bytes(counts.n_bytes)}, {rate}/s, ETA {eta}"
            )
        self.write(line)


class _LineFileProgress:
    def __init__(self, parent: LineProgress, name: str) -> None:
        self._parent = parent
        self._name = name

    def start(self, total_bytes: int | None, done_bytes: int) -> None:
        pass

    def advance(self, n_bytes: int) -> None:
        self._parent.count_bytes(n_bytes)

    def note(self, message: str) -> None:
        self._parent.write(f"{self._name}: {message}")

    def close(self) -> None:
        pass


def format_bytes(n_bytes: int) -> str:
    """Return a size for people: ``512 B``, ``39.1 KiB``, ``1.5 GiB``."""
    if n_bytes < 1024:
        return f"{n_bytes} B"
    size = n_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_duration(seconds: float) -> str:
    """Return a duration for people: ``45s``, ``2m 10s``, ``1h 05m``."""
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
