"""Run one shard of a stream inside a worker process: the loop that answers the reader's messages.

NOTE [worker messages]
Reader to worker: ``(START, epoch, start)`` restarts the shard's stream for that pass with no credit;
``(GRANT, count, released_slot_ids)`` adds credit (NOTE [shard credits], engine.py) and hands slots back
(NOTE [slot transport], transport.py); ``(CLOSE,)`` ends the worker, as does the socket's end of file.
Worker to reader, in stream order: ``(SLOT, slot_id, nbytes)`` immediately followed by the segment's file
descriptor; ``(BATCH, payload, slot_id, retired_slot_ids)``; ``(END,)``; ``(ERROR, PackedException)``.
Each batch, end or error uses one credit. The worker reads messages only once its credit is used up: while
it has credit, nothing it could read changes what it does next (a CLOSE also closes the socket, which ends
the worker at its next send).

NOTE [worker lifetime]
A worker never outlives the reader's process: a thread waits on a pipe whose only writer is the reader,
and exits the process at its end of file, whatever the main thread is busy with; on Linux the kernel also
kills the worker when its parent (the forkserver, which itself ends with the reader) dies. Workers
ignore SIGINT: Ctrl-C reaches the whole process group, and only the reader reports it, then stops them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle
from typing import Any

from emloop_ds.core.stream.engine import StreamSpec
from emloop_ds.core.stream.remote_error import pack_exception
from emloop_ds.core.stream.shard import Shard
from emloop_ds.core.stream.transport import SlotWriter

__all__ = ["BATCH", "CLOSE", "END", "ERROR", "GRANT", "SLOT", "START", "run_worker"]

START, GRANT, CLOSE = "start", "grant", "close"
SLOT, BATCH, END, ERROR = "slot", "batch", "end", "error"

_PR_SET_PDEATHSIG = 1


def run_worker(
    conn: Connection, parent_alive: Connection, spec: bytes, index: int, count: int, parent_pid: int
) -> None:
    """Serve shard ``index`` of ``count`` of the stream of the pickled ``StreamSpec`` until told to stop.

    The spec comes pickled so that failing to rebuild it (a module the worker cannot import) is the
    shard's failure, reported to the reader like any other, rather than a crash of the worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(parent_alive, parent_pid)
    loop = _ShardLoop(conn, spec, index, count)
    try:
        loop.run()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the reader went away: nobody is left to tell
    finally:
        # The reader is gone or stopping us: nobody is left to hand an error of the stream's close to.
        with contextlib.suppress(Exception):
            loop.close()


def _watch_parent(parent_alive: Connection, parent_pid: int) -> None:
    """Exit this process as soon as the reader's process ends (NOTE [worker lifetime])."""
    if sys.platform == "linux" and os.getppid() != parent_pid:  # started by the forkserver
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def wait_for_end_of_file() -> None:
        with contextlib.suppress(EOFError, OSError):
            parent_alive.recv_bytes()
        os._exit(1)

    threading.Thread(target=wait_for_end_of_file, name="emloop-ds parent watch", daemon=True).start()


class _ShardLoop:
    """Produce one shard's batches against the reader's credit (NOTE [worker messages])."""

    def __init__(self, conn: Connection, spec: bytes, index: int, count: int) -> None:
        self._conn = conn
        self._pickled_spec = spec
        self._spec: StreamSpec | None = None
        self._index = index
        self._count = count
        self._writer = SlotWriter()
        self._epoch = 0
        self._start = 0
        self._stream: Iterator[Any] | None = None
        self._is_active = False
        self._credit = 0

    def run(self) -> None:
        """Answer messages and produce batches until told to close or the reader goes away."""
        conn = self._conn
        while True:
            if self._is_active and self._credit > 0:
                self._produce_one()
            elif not self._handle(conn.recv()):
                return

    def close(self) -> None:
        """Close the stream and unmap the slots."""
        self._close_stream()
        self._writer.close()

    def _handle(self, message: tuple[Any, ...]) -> bool:
        kind = message[0]
        if kind == GRANT:
            self._credit += message[1]
            self._writer.release(message[2])
        elif kind == START:
            self._close_stream()
            self._epoch, self._start, self._is_active, self._credit = message[1], message[2], True, 0
        elif kind == CLOSE:
            return False
        else:
            raise ValueError(f"worker received an unknown message {kind!r}")
        return True

    def _produce_one(self) -> None:
        """Use one credit: send the next batch, or the end of the pass, or the error that ended it."""
        self._credit -= 1
        try:
            if self._stream is None:
                if self._spec is None:
                    self._spec = pickle.loads(self._pickled_spec)
                self._stream = self._spec.open(Shard(self._index, self._count, self._epoch, self._start))
            encoded = self._writer.encode(next(self._stream))
        except StopIteration:
            self._end_pass()
            self._conn.send((END,))
            return
        # Even SystemExit from the dataset is the shard's failure, handed to the reader in stream order.
        except BaseException as exc:
            self._end_pass()
            self._conn.send((ERROR, pack_exception(exc)))
            return
        for slot in encoded.new_slots:
            self._conn.send((SLOT, slot.slot_id, slot.nbytes))
            send_handle(self._conn, slot.fd, 0)
            os.close(slot.fd)
        self._conn.send((BATCH, encoded.payload, encoded.slot_id, encoded.retired))

    def _end_pass(self) -> None:
        self._is_active = False
        self._close_stream()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        close = getattr(stream, "close", None)
        if close is not None:
            close()
