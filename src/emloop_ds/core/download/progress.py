"""Report download progress through a small interface: nothing for tests and scripts, tqdm bars for people."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = ["FileProgress", "NoProgress", "Progress", "TqdmProgress"]


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
    """Hand out a ``FileProgress`` per file; may be called from several threads."""

    def open_file(self, name: str) -> FileProgress:
        """Start reporting the file ``name``."""


class NoProgress:
    """Report nothing: the default for library calls in tests and scripts."""

    def open_file(self, name: str) -> FileProgress:
        """Return a reporter that ignores everything."""
        return self

    def start(self, total_bytes: int | None, done_bytes: int) -> None:
        """Ignore the start of a transfer."""

    def advance(self, n_bytes: int) -> None:
        """Ignore received bytes."""

    def note(self, message: str) -> None:
        """Ignore a message."""

    def close(self) -> None:
        """Do nothing."""


class TqdmProgress:
    """Show a tqdm bar per file (bytes, rate, ETA) and notes as lines; tqdm.auto makes widgets in notebooks.

    A bar appears only once a file has taken ``delay_s`` seconds, as tqdm's own ``delay`` does, so quick
    files cause no flicker and a run that only finds complete files does not even import tqdm.
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

    def open_file(self, name: str) -> FileProgress:
        """Start reporting the file ``name``; its bar is created lazily."""
        return _TqdmFileProgress(self, name)

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
            leave=self._leave,
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

    def is_due(self, started_s: float) -> bool:
        """Tell whether a file started at ``started_s`` has run long enough to deserve a bar."""
        return self._clock() - started_s >= self._delay_s

    def now(self) -> float:
        """Read the clock."""
        return self._clock()


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
        if self._bar is not None:
            self._bar.update(n_bytes)
        elif self._parent.is_due(self._started_s):
            self._bar = self._parent.make_bar(self._name, self._total_bytes, self._done_bytes)

    def note(self, message: str) -> None:
        self._parent.write(f"{self._name}: {message}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
