"""Hold one shard's stream on a Dask worker and produce its batches in numbered chunks against credit.

This module runs on the workers: it imports neither dask nor anything the reader's side needs, so that
unpickling the actor's class costs a worker only emloop-ds itself (NOTE [dask chunks], ``engine.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emloop_ds.core.stream.engine import StreamSpec
from emloop_ds.core.stream.remote_error import PackedException, pack_exception
from emloop_ds.core.stream.shard import Shard
from emloop_ds.core.types import Batch

__all__ = ["END", "Chunk", "RemoteFailure", "ShardActor"]

END = "end"
"""The outcome of a chunk whose call found the end of the shard's stream."""


@dataclass(frozen=True, slots=True)
class RemoteFailure:
    """Carry the exception that ended a shard on a worker, packed with its traceback (``remote_error``).

    The reader rebuilds it with ``unpack_exception``, or gets a stand-in if it cannot be pickled or
    unpickled, exactly as from a worker process.
    """

    packed: PackedException
    where: str


Chunk = tuple[int, int, list[Batch], str | RemoteFailure | None]
"""What one call returns: (generation, position of its first batch, batches, outcome).

Positions count the batches this actor made in the pass, from 0 even when the pass was opened at a
resume's ``start`` (the engine puts chunks in order from 0 each pass).

The outcome is None while the stream goes on, ``END`` or a ``RemoteFailure`` after its last batch. A
position of -1 marks a call that belonged to a pass the actor has already left.
"""


class ShardActor:
    """Run shard ``index`` of ``count`` of a stream on the worker that holds this actor.

    Dask runs an actor's methods one at a time in the worker's actor thread, but calls may arrive in any
    order, so every chunk says where it starts and the reader's side puts chunks back in order.
    """

    def __init__(self, spec: StreamSpec, index: int, count: int, shipped_file: str | None) -> None:
        """Remember the stream and, if code was shipped, put its archive last on the import path.

        Last, so that a worker that can import the dataset's module itself (on the same machine, or from
        a shared folder) uses it, with the data files beside it; the shipped copy serves the others.
        """
        from distributed import get_worker

        worker = get_worker()
        self._where = f"dask worker {worker.address}"
        if shipped_file is not None:
            archive = str(Path(worker.local_directory) / shipped_file)
            if archive not in sys.path:
                sys.path.append(archive)
        self._spec = spec
        self._index = index
        self._count = count
        self._generation = -1
        self._stream: Iterator[Batch] | None = None
        self._position = 0
        self._is_done = True

    def produce(self, generation: int, epoch: int, count: int, start: int = 0) -> Chunk:
        """Make up to ``count`` batches of pass ``generation``, starting that pass if it is new.

        A new pass opens the shard at ``start``: that many of its batches were delivered before a resume.

        Never raises for the dataset's sake: its exception becomes the chunk's outcome.
        """
        if generation < self._generation:
            return (generation, -1, [], None)
        if generation > self._generation:
            self._generation, self._stream, self._position, self._is_done = generation, None, 0, False
        # Not ``start``: that opens the shard; chunk positions count from 0 each pass (see Chunk).
        first = self._position
        if self._is_done:
            return (generation, first, [], None)
        batches: list[Batch] = []
        outcome: str | RemoteFailure | None = None
        try:
            if self._stream is None:
                self._stream = self._spec.open(Shard(self._index, self._count, epoch, start))
            for _ in range(count):
                batches.append(next(self._stream))
        except StopIteration:
            outcome = END
        except BaseException as exc:  # even SystemExit ends the shard rather than the worker's thread
            outcome = RemoteFailure(pack_exception(exc), self._where)
        if outcome is not None:
            self._is_done, self._stream = True, None
        self._position += len(batches)
        return (generation, first, batches, outcome)
