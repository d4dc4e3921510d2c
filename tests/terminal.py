"""Run a command with stdout or stderr on a pseudo-terminal, as a user at a terminal would see it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal


def run_at_a_terminal(
    command: Sequence[str],
    *,
    terminal: Literal["stdout", "stderr"],
    columns: int,
    rows: int = 24,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, bytes, bytes]:
    """Run ``command`` with ``terminal`` on a pseudo-terminal of ``rows`` x ``columns``, the other on a pipe.

    Return the exit code, the bytes the terminal showed (colour codes and ``\\r`` included) and the
    pipe's bytes.
    """
    main_fd, child_fd = pty.openpty()
    try:
        fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, terminal: child_fd}
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=streams["stdout"],
            stderr=streams["stderr"],
        )
        os.close(child_fd)
        child_fd = -1
        shown = b""
        while True:  # until the child's end is closed, which Linux reports as EIO
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(main_fd)
        if child_fd >= 0:
            os.close(child_fd)
    return process.returncode, shown, stderr if terminal == "stdout" else stdout
