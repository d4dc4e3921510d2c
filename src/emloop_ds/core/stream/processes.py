"""Run the shards of a stream on worker processes of this machine: the process ``ShardEngine``.

Worker ``i`` runs shard ``i`` (``worker_loop.py``); batches come back through shared memory
(``transport.py``). Workers are started by a forkserver that preloads emloop_ds and numpy (spawn where
there is none), never by forking this possibly multi-threaded process.

NOTE [lost workers]
A worker that dies closes its end of the socket, so the reader's blocking read ends at once with end of
file: the death is reported then, as a ``ShardFailure`` naming the shard, the process and its exit
status, never as a hang. The lost worker is replaced when its shard's next pass starts. Items the worker
sent before dying are still read first, in order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import time
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import recv_handle

from emloop_ds.core.errors import StreamError
from emloop_ds.core.stream.engine import ShardEnd, ShardFailure, ShardItem, StreamSpec
from emloop_ds.core.stream.remote_error import unpack_exception
from emloop_ds.core.stream.transport import SlotReader, make_room_for_files
from emloop_ds.core.stream.worker_loop import BATCH, CLOSE, END, ERROR, GRANT, SLOT, START, run_worker

__all__ = ["ProcessEngine", "WorkerLostError"]

_PRELOAD = ["numpy", "emloop_ds", "emloop_ds.core.stream.worker_loop"]
_STOP_GRACE_S = 1.0


class WorkerLostError(ChildProcessError):
    """Say that a worker process died while running its shard (NOTE [lost workers])."""


class _Worker:
    """One worker process and the reader's ends of its connections."""

    __slots__ = ("conn", "index", "is_lost", "parent_alive", "pid", "process", "reader")

    def __init__(self, index: int, process: BaseProcess, conn: Connection, parent_alive: Connection) -> None:
        self.index = index
        self.process = process
        self.pid = process.pid
        self.conn = conn
        self.parent_alive = parent_alive
        self.reader = SlotReader()
        self.is_lost = False


class ProcessEngine:
    """Run shard ``i`` of ``shard_count`` of ``spec``'s stream on worker process ``i``.

    Raises:
        pickle.PicklingError, TypeError, AttributeError: if ``spec`` cannot be pickled.
    """

    def __init__(self, spec: StreamSpec, shard_count: int) -> None:
        self._spec = spec
        self._pickled_spec = pickle.dumps(spec)
        self._count = shard_count
        self._context = _worker_context()
        self._workers: list[_Worker] = []
        self._is_closed = False
        self._next_fair = 0
        # Stops the workers on close(), when the engine is collected, and at interpreter exit.
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers)
        for index in range(shard_count):
            self._workers.append(self._start_worker(index))

    @property
    def shard_count(self) -> int:
        """Return the number of shards, N."""
        return self._count

    @property
    def pids(self) -> list[int | None]:
        """Return the process id of each shard's current worker."""
        return [worker.pid for worker in self._workers]

    def start_pass(self, shard: int, epoch: int, start: int = 0) -> None:
        """Restart ``shard``'s stream for pass ``epoch`` at ``start``, first replacing a lost worker."""
        self._check_open()
        worker = self._workers[shard]
        if worker.is_lost or not worker.process.is_alive():
            _stop_workers([worker])
            worker = self._workers[shard] = self._start_worker(shard)
        self._send(worker, (START, epoch, start))

    def grant(self, shard: int, count: int) -> None:
        """Allow ``shard`` ``count`` more batches, handing back the slots the reader has let go."""
        self._check_open()
        worker = self._workers[shard]
        self._send(worker, (GRANT, count, worker.reader.take_released()))

    def receive(self, shard: int | None) -> tuple[int, ShardItem]:
        """Return the next item of ``shard``, or of the first shard with one when ``None``.

        An interruption (Ctrl-C) may cut a message in half, so it closes the engine before propagating.
        """
        self._check_open()
        try:
            worker = self._wait_for_any() if shard is None else self._workers[shard]
            return worker.index, self._read(worker)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every worker, gracefully for up to a second, then by force; idempotent."""
        self._is_closed = True
        self._finalizer()

    def _check_open(self) -> None:
        if self._is_closed:
            raise StreamError(
                "the worker processes of this stream were stopped (closed or interrupted); "
                "make a new StreamWrapper to read it again"
            )

    def _start_worker(self, index: int) -> _Worker:
        conn, worker_conn = self._context.Pipe(duplex=True)
        alive_reader, alive_writer = self._context.Pipe(duplex=False)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=run_worker,
            args=(worker_conn, alive_reader, self._pickled_spec, index, self._count, os.getpid()),
            name=f"emloop-ds worker {index} of {self._spec.description}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            worker_conn.close()  # the worker's ends live only in the worker (NOTE [lost workers])
            alive_reader.close()
        return _Worker(index, process, conn, alive_writer)

    def _send(self, worker: _Worker, message: tuple[object, ...]) -> None:
        if worker.is_lost:
            return
        with contextlib.suppress(OSError):  # the worker died: the next receive says so (NOTE [lost workers])
            worker.conn.send(message)

    def _wait_for_any(self) -> _Worker:
        """Return a worker with something to read, taking them in turn so that none starves."""
        candidates = [worker for worker in self._workers if not worker.is_lost]
        if not candidates:
            raise RuntimeError("receive(None) needs a shard that is running")
        ready = set(wait([worker.conn for worker in candidates]))
        for offset in range(len(self._workers)):
            worker = self._workers[(self._next_fair + offset) % len(self._workers)]
            if worker.conn in ready and not worker.is_lost:
                self._next_fair = worker.index + 1
                return worker
        raise RuntimeError("wait() returned no connection of ours")

    def _read(self, worker: _Worker) -> ShardItem:
        """Read the worker's next item, mapping the slots it announces on the way."""
        if worker.is_lost:
            return self._lost(worker)
        conn, reader = worker.conn, worker.reader
        while True:
            try:
                message = conn.recv()
                kind = message[0]
                if kind == SLOT:
                    make_room_for_files()
                    reader.add_slot(message[1], message[2], recv_handle(conn))
                    continue
            except (EOFError, OSError):
                return self._lost(worker)
            if kind == BATCH:
                return reader.decode(message[1], message[2], message[3])  # type: ignore[no-any-return]
            if kind == END:
                return ShardEnd(worker.index)
            if kind == ERROR:
                where = self._where(worker)
                return ShardFailure(worker.index, unpack_exception(message[1], where), where)
            raise RuntimeError(f"worker sent an unknown message {kind!r}")

    def _lost(self, worker: _Worker) -> ShardFailure:
        """Report a worker that died (NOTE [lost workers]); its exit status is known within a second."""
        worker.is_lost = True
        worker.process.join(_STOP_GRACE_S)
        if worker.process.exitcode is None:
            worker.process.kill()
            worker.process.join(_STOP_GRACE_S)
        error = WorkerLostError(
            f"{self._where(worker)} {_describe_exit(worker.process.exitcode)} while running its shard"
        )
        return ShardFailure(worker.index, error, self._where(worker))

    def _where(self, worker: _Worker) -> str:
        return f"worker process {worker.pid} (shard {worker.index} of {self._count})"


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "closed its connection and did not exit"
    if exitcode < 0:
        try:
            return f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _worker_context() -> BaseContext:
    """Return the forkserver context preloading emloop_ds and numpy, or spawn where there is none."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def _stop_workers(workers: Sequence[_Worker]) -> None:
    """Ask the workers to stop, give them a second to close their streams, then kill the rest."""
    for worker in workers:
        with contextlib.suppress(OSError):  # already gone
            worker.conn.send((CLOSE,))
        worker.conn.close()
    deadline = time.monotonic() + _STOP_GRACE_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        # A worker still busy in its stream exits now (NOTE [worker lifetime], worker_loop.py).
        worker.parent_alive.close()
        if worker.process.exitcode is None:
            worker.process.kill()
            worker.process.join(_STOP_GRACE_S)
        worker.reader.close()
