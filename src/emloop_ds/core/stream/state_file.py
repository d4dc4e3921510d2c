"""Keep a stream's resume state in a JSON file: read it to resume, write it atomically as the read goes on.

NOTE [state file]
The file holds one ``StreamWrapper.state_dict()``. It is replaced whole, never rewritten in place: the
state goes to a temporary file beside it, which is fsynced and renamed over it, and the folder is fsynced,
so that a kill or a power cut at any moment leaves the old state or the new one, never a mix. A reader
that stops (the end, Ctrl-C, SIGTERM, a failure) writes the state of the batches it was handed; with
``every`` it also writes after every ``every`` batches, so that a SIGKILL loses at most that many. A file
that cannot be resumed from is refused before anything is read, and left as it is.
The state says what the wrapper handed out, the reader's summary what it counted: a Ctrl-C or SIGTERM
landing in the few bytecodes between the two leaves that batch in the state (it is not read again after
the resume) but out of the count. The reader saves after counting a batch, so a save never widens that gap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emloop_ds.core.errors import ConfigError, StreamError, describe_exception
from emloop_ds.core.stream.resume_state import ResumeState

if TYPE_CHECKING:
    from emloop_ds.core.stream.wrapper import StreamWrapper

__all__ = ["StateFile", "write_state_atomically"]


class StateFile:
    """Resume a wrapper from ``path`` if it exists, and save its state there (NOTE [state file]).

    Args:
        path: the state file; it need not exist yet.
        every: also save after every ``every`` batches; None saves only when ``save`` is called.
    """

    def __init__(self, path: Path, every: int | None = None) -> None:
        if every is not None and every < 1:
            raise ValueError(f"StateFile needs every of 1 or more, or None, not {every}")
        self.path = path
        self._every = every
        self.resumed_at: dict[str, int] | None = None
        """Where the state read resumes, ``{"epoch": E, "batch": B}``; None before ``read`` or if none."""
        self._saved: dict[str, Any] | None = None
        self._since_save = 0
        self._is_kept = False

    def read(self) -> dict[str, int] | None:
        """Read the file, if it exists, and return where it resumes, as ``{"epoch": E, "batch": B}``.

        Raises:
            ConfigError: if the file cannot be read, is not JSON, or holds no stream state.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the stream state file {self.path} ({describe_exception(exc)}); "
                "pass a file written by --state, or another path"
            ) from exc
        try:
            saved = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"stream state file {self.path} is not JSON ({describe_exception(exc)}); pass a file written "
                "by --state, or remove it to start from the beginning"
            ) from exc
        try:
            state = ResumeState.from_dict(saved)
        except ConfigError as exc:
            raise ConfigError(f"stream state file {self.path} holds no stream state: {exc}") from exc
        self._saved = saved
        self.resumed_at = {"epoch": state.epoch, "batch": state.batch}
        return self.resumed_at

    def resume(self, wrapper: StreamWrapper) -> None:
        """Load the state read by ``read`` into ``wrapper``, a new one; do nothing if there was none.

        Raises:
            ConfigError: naming the file, if the state is of another stream, config or parameters.
        """
        if self._saved is None:
            return
        try:
            wrapper.load_state_dict(self._saved)
        except ConfigError as exc:
            raise ConfigError(
                f"cannot resume from {self.path}: {exc} (or remove {self.path} to start from the beginning)"
            ) from exc

    def keep(self) -> None:
        """Leave the file as it is from now on: the wrapper went past what the run was to read."""
        self._is_kept = True

    def count_batch(self, wrapper: StreamWrapper) -> None:
        """Note that ``wrapper`` handed out one more batch, saving its state every ``every`` batches."""
        self._since_save += 1
        if self._every is not None and self._since_save >= self._every:
            self.save(wrapper)

    def save(self, wrapper: StreamWrapper) -> None:
        """Write ``wrapper``'s state to the file atomically, unless ``keep`` was called.

        Raises:
            StreamError: if the file cannot be written.
        """
        self._since_save = 0
        if not self._is_kept:
            write_state_atomically(self.path, wrapper.state_dict())


def write_state_atomically(path: Path, state: dict[str, Any]) -> None:
    """Replace ``path`` by a file holding ``state`` as JSON: temporary file, fsync, rename, fsync folder.

    Raises:
        StreamError: if it cannot be written; the old file, if any, is left as it was.
    """
    folder = path.parent
    temporary = folder / f".{path.name}.{os.getpid()}.tmp"
    data = (json.dumps(state, separators=(",", ":")) + "\n").encode()
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except BaseException as exc:  # a Ctrl-C during the write too: leave no temporary file behind
        temporary.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        raise StreamError(
            f"cannot write the stream state to {path} ({describe_exception(exc)}); check that its folder "
            "exists and is writable, or pass another --state path"
        ) from exc
