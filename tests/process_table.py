"""Look at processes from outside: wait for their exit, find descendants, see the shared memory they map."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path


def wait_for_exit(pids: list[int], timeout_s: float = 20.0) -> list[int]:
    """Wait on pidfds until every process has exited; return those still alive at the deadline."""
    alive = []
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                alive.append(pid)
        finally:
            os.close(fd)
    return alive


def descendants(pid: int) -> list[int]:
    """Return the processes descended from ``pid``, from the process table (/proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def shared_memory_of(pid: int) -> tuple[list[str], list[str]]:
    """Return the shared memory ``pid`` maps: segments in /dev/shm (not semaphores), and our memfd slots."""
    paths = [
        line.split(maxsplit=5)[5]
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if len(line.split(maxsplit=5)) == 6
    ]
    named = [path for path in paths if path.startswith("/dev/shm/") and not path.startswith("/dev/shm/sem.")]
    slots = [path for path in paths if "emloop-ds-slot" in path]
    return named, slots
