"""Read a stream's shards from worker processes: the ``BatchSource`` of ``StreamWrapper(..., workers=N)``.

The wrapper imports this module only when ``workers > 0``, so the process machinery stays out of the
simple paths. It checks the stream at construction, starts the workers when the reader first enters
``with`` and merges their shards with ``ShardMerge`` (NOTE [shard merge], merge.py).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from emloop_ds.core.dataset import AbstractDataset
from emloop_ds.core.errors import ConfigError, StreamNotEnteredError
from emloop_ds.core.stream.engine import ShardEngine, StreamSpec
from emloop_ds.core.stream.merge import ShardMerge
from emloop_ds.core.stream.shard import is_shardable
from emloop_ds.core.types import Batch

if TYPE_CHECKING:
    from emloop_ds.core.stream.resume_state import ResumeState

__all__ = ["WorkerSource", "stream_spec"]

DEFAULT_BUFFER_SIZE = 2
"""Batches in flight per worker when the wrapper is not told otherwise."""

_NO_GATE = contextlib.nullcontext()


def stream_spec(stream_fn: Callable[..., Iterable[Batch]], description: str) -> StreamSpec:
    """Describe how a worker rebuilds ``stream_fn``: from its dataset's class and config, or by pickle.

    Raises:
        ConfigError: if the stream is not shardable, or is neither a dataset's method nor picklable.
    """
    name = getattr(stream_fn, "__qualname__", repr(stream_fn))
    if not is_shardable(stream_fn):
        raise ConfigError(
            f"{description} ({name}) is not shardable, so it cannot run on worker processes: give it a "
            "`shard` parameter that defaults to the whole stream, e.g. `def train_stream(self, "
            "shard=Shard(0, 1))`, and yield only `shard.select(...)` of its batches; or use workers=0"
        )
    dataset = getattr(stream_fn, "__self__", None)
    method = getattr(stream_fn, "__func__", None)
    if isinstance(dataset, AbstractDataset) and method is not None and hasattr(dataset, "_config_str"):
        spec = _dataset_spec(dataset, method.__name__, description)
    else:
        spec = StreamSpec(description, function=stream_fn)
    try:
        pickle.dumps(spec)
    except Exception as exc:
        raise ConfigError(
            f"{description} ({name}) cannot be sent to worker processes: {type(exc).__name__}: {exc}; "
            "pass a dataset's stream method, or a function defined at the top level of a module"
        ) from exc
    return spec


def _dataset_spec(dataset: AbstractDataset, method: str, description: str) -> StreamSpec:
    """Describe a dataset's stream by its class and config string, which workers rebuild it from."""
    kind = type(dataset)
    module_file = getattr(sys.modules.get(kind.__module__), "__file__", None)
    search_paths = [os.getcwd()]
    if module_file is not None and "." not in kind.__module__:
        search_paths.insert(0, os.path.dirname(os.path.abspath(module_file)))
    return StreamSpec(
        description,
        dataset_module=kind.__module__,
        dataset_qualname=kind.__qualname__,
        config_str=dataset._config_str,
        method=method,
        module_file=module_file,
        search_paths=tuple(search_paths),
    )


class WorkerSource:
    """Hand the wrapper the merged batches of ``workers`` shards running on worker processes.

    The workers start when the reader first enters ``with``. Leaving ``with`` pauses them: they finish the
    batches already granted and make no more until the reader asks again. ``close`` stops them, as does
    garbage collection or the end of the interpreter (the engine's finalizer).
    """

    def __init__(
        self,
        spec: StreamSpec,
        workers: int,
        *,
        ordered: bool,
        buffer_size: int,
        epoch_size: int,
        start_engine: Callable[[StreamSpec, int], ShardEngine] | None = None,
    ) -> None:
        self._spec = spec
        self._workers = workers
        self._is_ordered = ordered
        self._buffer_size = buffer_size
        self._epoch_size = epoch_size
        self._start_engine = start_engine
        self._engine: ShardEngine | None = None
        self._merge: ShardMerge | None = None
        self._resume_from: ResumeState | None = None

    @property
    def engine(self) -> ShardEngine | None:
        """Return the engine running the shards, once started."""
        return self._engine

    def start(self) -> None:
        """Start the worker processes on the first entry; later entries resume them."""
        if self._engine is None:
            start_engine = self._start_engine or _process_engine
            self._engine = start_engine(self._spec, self._workers)
            self._merge = ShardMerge(
                self._engine,
                ordered=self._is_ordered,
                buffer_size=self._buffer_size,
                epoch_size=self._epoch_size,
                description=self._spec.description,
            )
            if self._resume_from is not None:
                saved, self._resume_from = self._resume_from, None
                self._merge.resume(
                    saved.pass_number, saved.batch, saved.shard_batches, saved.shard_running, saved.turn
                )

    def resume(self, state: ResumeState) -> None:
        """Continue from ``state`` once the workers start (NOTE [shard merge], merge.py)."""
        self._resume_from = state

    def position(self) -> tuple[int, int, int, list[int], list[bool], int]:
        """Return the merge's position (``ShardMerge.position``), or the one to resume from."""
        if self._merge is not None:
            return self._merge.position()
        if self._resume_from is not None:
            saved = self._resume_from
            return 0, saved.batch, saved.pass_number, saved.shard_batches, saved.shard_running, saved.turn
        return 0, 0, 0, [0] * self._workers, [True] * self._workers, 0

    def stop(self) -> None:
        """Pause: grant the workers nothing more (NOTE [shard credits]) until the reader asks again."""

    def next_batch(self) -> Batch | None:
        """Return the next merged batch, or None at the end of the epoch.

        Raises:
            StreamNotEnteredError: if read before the wrapper was ever entered with ``with``.
        """
        if self._merge is None:
            raise StreamNotEnteredError(
                f"{self._spec.description} runs on {self._workers} worker processes, so it must be iterated "
                "inside `with stream:`, which starts them; wrap the loop in it"
            )
        return self._merge.next_batch()

    def empty(self) -> bool:
        """Return whether no batch is requested from the workers ahead of the reader."""
        return self._merge is None or self._merge.is_idle

    @property
    def allow_buffering(self) -> AbstractContextManager[None]:
        """Return a context that does nothing: workers never share the reader's GIL."""
        return _NO_GATE

    def close(self) -> None:
        """Stop the worker processes; idempotent."""
        if self._engine is not None:
            self._engine.close()


def _process_engine(spec: StreamSpec, workers: int) -> ShardEngine:
    from emloop_ds.core.stream.processes import ProcessEngine

    return ProcessEngine(spec, workers)
