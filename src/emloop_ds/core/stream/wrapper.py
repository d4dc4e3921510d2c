"""Define ``StreamWrapper``, the reader-facing side of a stream: epochs by ``for`` loop, ``with``, profiling.

Where the batches come from is a ``BatchSource`` (``source.py``): epoch cutting in the reader's thread
(``epochs.py``) or a producer thread's buffer (``buffer.py``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, overload

from emloop_ds.core.stream.buffer import ThreadBuffer
from emloop_ds.core.stream.epochs import EpochCutter
from emloop_ds.core.stream.resume_state import STATE_VERSION, ResumeState
from emloop_ds.core.stream.source import BatchSource
from emloop_ds.core.types import Batch

if TYPE_CHECKING:
    from emloop_ds.core.cache.stream import CachedStream
    from emloop_ds.core.stream.engine import ShardEngine
    from emloop_ds.core.stream.worker_source import WorkerSource

__all__ = ["Profile", "StreamWrapper"]

Profile = MutableMapping[str, list[float]]
"""Timings in seconds by event name, such as ``read_batch_train``; a plain dict or a ``defaultdict(list)``."""

_POSITIONAL_PARAMETERS = ("buffer_size", "epoch_size", "name", "profile")
_KEYWORD_PARAMETERS = frozenset(
    {
        *_POSITIONAL_PARAMETERS,
        "buffer",
        "eager",
        "workers",
        "ordered",
        "engine",
        "scheduler",
        "scheduler_timeout_s",
        "rank",
        "world_size",
        "cache",
        "shuffle",
        "seed",
    }
)
_ENGINES = ("processes", "dask")


class StreamWrapper:
    """Dataset stream wrapper which manages buffering, epoch cutting etc.

    It restarts the dataset stream after each pass, cuts epochs of ``epoch_size`` batches across those
    restarts, optionally prepares up to ``buffer_size`` batches of the current epoch in a background
    thread, and records how long each read waited in ``profile``. A buffered wrapper is iterated inside
    ``with``, which runs and stops the thread (reading it before any ``with`` is a ``ValueError``)::

        stream = StreamWrapper(dataset.train_stream, 'train')
        for batch in stream:  # 1st epoch
            ...
        stream = StreamWrapper(dataset.train_stream, 'train', buffer=16, epoch_size=1000)
        with stream:
            for batch in stream:  # 1st epoch of 1000 batches
                ...
    """

    @overload
    def __init__(
        self,
        stream_fn: Callable[[], Iterable[Batch]],
        buffer_size: int = 0,
        epoch_size: int = -1,
        name: str | None = None,
        profile: Profile | None = None,
        *,
        buffer: int = ...,
        eager: bool = False,
        workers: int = 0,
        ordered: bool = True,
        engine: Literal["processes", "dask"] = "processes",
        scheduler: str | Any | None = None,
        scheduler_timeout_s: float = 10.0,
        rank: int = 0,
        world_size: int = 1,
        cache: bool | str | os.PathLike[str] = False,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None: ...

    @overload
    def __init__(
        self,
        stream_fn: Callable[[], Iterable[Batch]],
        name: str,
        /,
        *,
        buffer_size: int = 0,
        buffer: int = ...,
        epoch_size: int = -1,
        profile: Profile | None = None,
        eager: bool = False,
        workers: int = 0,
        ordered: bool = True,
        engine: Literal["processes", "dask"] = "processes",
        scheduler: str | Any | None = None,
        scheduler_timeout_s: float = 10.0,
        rank: int = 0,
        world_size: int = 1,
        cache: bool | str | os.PathLike[str] = False,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None: ...

    def __init__(self, stream_fn: Callable[[], Iterable[Batch]], *args: Any, **kwargs: Any) -> None:
        """Create a new StreamWrapper.

        Args:
            stream_fn: returns a new iterable of batches for each pass, e.g. ``dataset.train_stream``.
            buffer_size: how many batches a background thread prepares ahead; below 1 means no buffer.
                ``buffer`` is another spelling.
            epoch_size: if above 0, every epoch has exactly that many batches, continuing over restarts
                of the stream; otherwise an epoch is one pass of the stream.
            name: the stream's name; a string in second place is the name.
            profile: each batch's read time is appended to ``profile['read_batch_<name>']``.
            eager: prepare batches whenever the buffer has room instead of only during
                ``allow_buffering``; right for streams that release the GIL. No effect with workers.
            workers: run the stream on this many worker processes, worker ``i`` iterating
                ``stream_fn(shard=Shard(i, workers))``; 0 (the default) reads in this process. With
                workers, ``buffer_size`` is the number of batches in flight per worker (below 1: 2).
            ordered: with workers, merge the shards one batch from each in turn, which is reproducible;
                ``False`` delivers batches as they are ready.
            engine: where the ``workers`` shards run: ``"processes"`` (the default) on this machine, or
                ``"dask"`` as actors on a Dask cluster, with the same stream semantics.
            scheduler: with ``engine="dask"``, an address such as ``"tcp://host:8786"`` or a
                ``distributed.Client``; None uses Dask's configured scheduler (``DASK_SCHEDULER_ADDRESS``)
                or else starts a LocalCluster of ``workers`` processes on 127.0.0.1, closed with the wrapper.
            scheduler_timeout_s: with ``engine="dask"``, how long to wait for the scheduler and its workers.
            rank: this reader's rank in a data-parallel job of ``world_size`` readers (see
                ``emloop_ds.ranks_from_env``). With ``world_size > 1`` the stream must be shardable: in
                this process it reads ``stream_fn(shard=Shard(rank, world_size, pass))``, and with workers
                worker ``i`` reads ``Shard(i * world_size + rank, workers * world_size)`` (NOTE [rank
                shards], engine.py), so the ranks read disjoint parts that together cover the stream.
            world_size: the number of readers in the data-parallel job; 1 (the default) is no job.
            cache: ``True`` caches a dataset's stream method under the cache root (``$EMLOOP_DS_CACHE``,
                else ``$XDG_CACHE_HOME/emloop-ds``, else ``~/.cache/emloop-ds``), a folder caches it
                there. The first pass is read from the stream and written through into the cache,
                sealed when the pass ends; every later pass, here or in any later process with the same
                fingerprint, reads the cache and the stream is not called (NOTE [cached passes],
                core/cache/stream.py). A cache that cannot be written gives a warning, never a failure.
            shuffle: with a cache, read each pass from it as a new permutation of all examples, fixed by
                ``seed`` and the pass number, re-batched to the size of the stream's first batch (a pass
                written through keeps the stream's order).
            seed: the base of the shuffle's permutations.

        Raises:
            TypeError: if the arguments are malformed.
            ValueError: if ``workers`` is negative, or ``rank`` is outside ``0 <= rank < world_size``.
            ConfigError: if ``workers > 0`` or ``world_size > 1`` and the stream is not shardable, if it
                cannot reach the workers, if ``engine="dask"`` and Dask is not installed, or if
                ``cache=True`` and the stream is not a dataset's stream method.
        """
        options = _bind_arguments(args, kwargs)
        _check_arguments(stream_fn, options)
        self._stream_fn = stream_fn
        self._buffer_size: int = max(options.get("buffer_size", 0), 0)
        self._name: str | None = options.get("name")
        self._profile: Profile | None = options.get("profile")
        self._profile_key = f"read_batch_{self._name}"
        self._with_depth = 0
        description = self._describe()
        # Where the batches come from (source.py): the reader's thread, a producer thread ahead of it, or
        # worker processes (worker_source.py, imported only when used).
        ranks = _check_ranks(stream_fn, options, description)
        self._cached: CachedStream | None = None
        if options.get("cache", False) is not False:
            self._cached = _cached_stream(stream_fn, options, description, ranks)
            self._epochs = EpochCutter(self._cached, options.get("epoch_size", -1), description)
        else:
            self._epochs = EpochCutter(stream_fn, options.get("epoch_size", -1), description, ranks=ranks)
        self._buffer: ThreadBuffer | None = None
        self._source: BatchSource = self._epochs
        self._workers: WorkerSource | None = None
        if self._cached is not None and self._cached.workers is not None:
            from emloop_ds.core.cache.stream import CacheSource

            self._source = CacheSource(self._epochs, self._cached)
        elif options.get("workers", 0) > 0:
            self._source = self._workers = _worker_source(stream_fn, options, description)
        elif self._buffer_size > 0:
            is_eager = options.get("eager", False)
            self._buffer = ThreadBuffer(self._epochs.next_batch, self._buffer_size, is_eager, description)
            self._source = self._buffer
        self._read = self._source.next_batch  # bound once: __next__ is the per-batch path
        self._options = options
        self._resumed_epoch = 0  # the epoch where a resume began
        self._identity = ""  # stream_identity(stream_fn), on the first state

    def state_dict(self) -> dict[str, Any]:
        """Return where the reader is, as a small JSON-serialisable dict: positions only, no batches.

        It can be taken between any two batches. ``load_state_dict`` on a new wrapper made with the same
        stream and parameters continues with exactly the batches this one would deliver next (NOTE
        [resume position], resume_state.py).

        """
        return self._state().to_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, a dict from ``state_dict()``; call it before the first read.

        Raises:
            ConfigError: if ``state`` is not a state, or is from another stream, config, ``epoch_size``,
                ``workers`` count, ``ordered`` setting, rank or world size (the message names the field).
            StreamError: if this wrapper was read already.
        """
        from emloop_ds.core.errors import StreamError

        saved = ResumeState.from_dict(state)
        current = self._state()
        saved.check_matches(current)
        if current.epoch or current.batch or current.pass_number or any(current.shard_batches):
            raise StreamError(
                f"{self._describe()} was read already, so it cannot resume; call load_state_dict on a new "
                "wrapper before its first read"
            )
        if self._workers is not None:
            self._workers.resume(saved)
        else:
            self._epochs.resume(saved.pass_number, saved.shard_batches[0], saved.batch)
        if self._buffer is not None:
            self._buffer.resume_epoch(saved.batch)
        self._resumed_epoch = saved.epoch

    def _state(self) -> ResumeState:
        epoch_size = self._options.get("epoch_size", -1)
        if self._workers is not None:
            epochs_ended, batch, pass_number, shard_batches, shard_running, turn = self._workers.position()
        else:
            source: EpochCutter | ThreadBuffer = self._buffer or self._epochs
            epochs_ended, delivered, epoch_start = source.position()
            if source is self._buffer and self._epochs.has_ended_resumed_epoch:  # NOTE [resume position]
                epochs_ended, epoch_start = epochs_ended + 1, epoch_start if epochs_ended else 0
            batch = delivered - epoch_start
            pass_number, pass_batch = self._epochs.pass_position(delivered)
            shard_batches, shard_running, turn = [pass_batch], [True], 0
        epoch = self._resumed_epoch + epochs_ended
        if 0 < epoch_size <= batch:  # the epoch's last batch is out: its end is the next epoch's start
            epoch, batch = epoch + 1, 0
        return ResumeState(
            version=STATE_VERSION,
            stream=self._name or "",
            fingerprint=self._identity or self._compute_identity(),
            epoch_size=max(epoch_size, 0),
            workers=self._options.get("workers", 0),
            ordered=self._options.get("ordered", True),
            rank=self._options.get("rank", 0),
            world_size=self._options.get("world_size", 1),
            cache=self._cached is not None,
            shuffle=self._options.get("shuffle", False),
            seed=self._options.get("seed", 0),
            epoch=epoch,
            batch=batch,
            pass_number=pass_number,
            shard_batches=shard_batches,
            shard_running=shard_running,
            turn=turn,
        )

    def _compute_identity(self) -> str:
        from emloop_ds.core.stream.resume_state import stream_identity

        self._identity = stream_identity(self._stream_fn)
        return self._identity

    @property
    def name(self) -> str | None:
        """Stream name."""
        return self._name

    @property
    def allow_buffering(self) -> AbstractContextManager[None]:
        """A resource that allows the stream object to prepare batches in advance.

        A gated (default) buffered wrapper prepares batches only while some code is inside this resource
        or while the reader waits on an empty buffer (until it is handed its batch), so that it does not
        compete with the reader's Python code for the GIL. Use it where the reader releases the GIL::

            with stream.allow_buffering:
                call_native_backend(batch)  # blocks but releases the GIL; the next batch is prepared

        Entries nest. An eager or unbuffered wrapper ignores it.
        """
        return self._source.allow_buffering

    def empty(self) -> bool:
        """Return whether the buffer is empty (always true without a buffer)."""
        return self._source.empty()

    @property
    def shard_engine(self) -> ShardEngine | None:
        """Return the engine running the shards once the first ``with`` started it; None without workers."""
        workers = self._workers or (self._cached.workers if self._cached is not None else None)
        return workers.engine if workers is not None else None

    @property
    def cache_mode(self) -> str | None:
        """Return ``"read"`` when reading a cache sealed before, ``"write"`` when writing it, else None.

        None also once writing the cache failed (a warning said so) and the passes come from the stream.
        """
        return self._cached.mode if self._cached is not None else None

    @property
    def cache_path(self) -> Path | None:
        """Return the folder of the stream's cache, or None without a cache."""
        return self._cached.path if self._cached is not None else None

    def close(self) -> None:
        """Stop the worker processes, if any; the wrapper cannot be read with workers afterwards.

        A cache still being written is removed (its pass has not ended). Garbage collection and the end
        of the interpreter stop the workers too. Idempotent.
        """
        if self._workers is not None:
            self._workers.close()
        if self._cached is not None:
            self._cached.close()

    def __enter__(self) -> Self:
        """If buffered, start the enqueueing thread (unless the epoch has ended: NOTE [buffer epochs]).

        With workers, start the worker processes, or resume them.
        """
        self._with_depth += 1
        if self._with_depth == 1:
            self._source.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """If buffered, terminate the enqueueing thread, keeping the buffered batches and stream position.

        With workers, pause them: they finish the batches already asked for and keep the stream position.
        """
        if self._with_depth > 0:
            self._with_depth -= 1
            if self._with_depth == 0:
                self._source.stop()

    def __iter__(self) -> Iterator[Batch]:
        """Get stream iterator."""
        return self

    def __next__(self) -> Batch:
        """Return next batch or end epoch with ``StopIteration``.

        Raises:
            StopIteration: at the end of the epoch.
            StreamProducerError: if the buffer's producer failed (a ``ChildProcessError``).
            StreamError: if a fixed-size epoch cannot be filled because the stream yields nothing.
            StreamNotEnteredError: if a buffered wrapper is read before it was ever entered with ``with``
                (a ``ValueError``, as in emloop).
        """
        if self._profile is None:
            batch = self._read()
            if batch is None:
                raise StopIteration
            return batch
        start = time.perf_counter()
        batch = self._read()
        if batch is None:
            raise StopIteration
        self._profile.setdefault(self._profile_key, []).append(time.perf_counter() - start)
        return batch

    def _describe(self) -> str:
        if self._name is not None:
            return f"stream `{self._name}`"
        return f"the stream of {getattr(self._stream_fn, '__qualname__', repr(self._stream_fn))}"

    # emloop's documented private methods, kept with their meaning for code written against emloop.

    def _get_stream(self) -> Iterator[Batch]:
        """Possibly create and return raw dataset stream iterator."""
        return self._epochs.get_stream()

    def _epoch_limit_reached(self) -> bool:
        """Return True if the number of produced batches reached ``epoch_size`` (never without a limit)."""
        return self._epochs.epoch_limit_reached()

    def _next_batch(self) -> Batch | None:
        """Return a single batch read in this thread, or None signaling epoch end."""
        return self._epochs.next_batch()

    def _dequeue_batch(self) -> Batch | None:
        """Return a single batch from queue or None signaling epoch end."""
        return self._thread_buffer().next_batch()

    def _enqueue_batches(self, stop_event: threading.Event) -> None:
        """Enqueue the rest of the epoch and its end here, unless ``stop_event`` is set first."""
        self._thread_buffer()._enqueue_batches(stop_event)

    def _start_thread(self) -> None:
        """Start an enqueueing thread."""
        self._thread_buffer()._start_thread()

    def _stop_thread(self) -> None:
        """Stop the enqueueing thread. Keep the queue content and stream state."""
        self._thread_buffer()._stop_thread()

    def _thread_buffer(self) -> ThreadBuffer:
        if self._buffer is None:
            raise RuntimeError(f"{self._describe()} has no buffer: pass buffer_size of 1 or more")
        return self._buffer


def _cached_stream(
    stream_fn: Callable[..., Iterable[Batch]],
    options: dict[str, Any],
    description: str,
    ranks: tuple[int, int] | None,
) -> CachedStream:
    """Return the stream function that reads ``stream_fn``'s passes from its cache (NOTE [cached passes]).

    Its workers, if any, run the whole stream (not a rank's part): a cache holds all of it, in order.
    """
    from emloop_ds.core.cache.stream import CachedStream, cache_target

    path, fingerprint = cache_target(stream_fn, options["cache"], description)
    workers = None
    if options.get("workers", 0) > 0:
        whole = {**options, "rank": 0, "world_size": 1, "ordered": True, "epoch_size": -1}
        workers = _worker_source(stream_fn, whole, description)
    return CachedStream(
        stream_fn,
        path,
        fingerprint,
        description,
        shuffle=options.get("shuffle", False),
        seed=options.get("seed", 0),
        ranks=ranks,
        workers=workers,
    )


def _worker_source(
    stream_fn: Callable[..., Iterable[Batch]], options: dict[str, Any], description: str
) -> WorkerSource:
    """Check the stream for workers and return the source that will run it on them."""
    import dataclasses

    from emloop_ds.core.stream.worker_source import DEFAULT_BUFFER_SIZE, WorkerSource, stream_spec

    spec = dataclasses.replace(
        stream_spec(stream_fn, description),
        rank=options.get("rank", 0),
        world_size=options.get("world_size", 1),
    )
    buffer_size = options.get("buffer_size", 0)
    start_engine = None
    if options.get("engine") == "dask":
        from emloop_ds.core.stream.dask import dask_engine_starter

        start_engine = dask_engine_starter(options.get("scheduler"), options.get("scheduler_timeout_s", 10.0))
    return WorkerSource(
        spec,
        options["workers"],
        ordered=options.get("ordered", True),
        buffer_size=buffer_size if buffer_size > 0 else DEFAULT_BUFFER_SIZE,
        epoch_size=options.get("epoch_size", -1),
        start_engine=start_engine,
    )


def _check_ranks(
    stream_fn: Callable[..., Iterable[Batch]], options: dict[str, Any], description: str
) -> tuple[int, int] | None:
    """Return ``(rank, world_size)`` for an in-process reader of a data-parallel job, None outside one.

    Raises:
        ConfigError: if ``world_size > 1`` and the stream is not shardable.
    """
    rank, world_size = options.get("rank", 0), options.get("world_size", 1)
    if world_size == 1:
        return None
    from emloop_ds.core.stream.shard import is_shardable

    if not is_shardable(stream_fn):
        from emloop_ds.core.errors import ConfigError

        raise ConfigError(
            f"{description} is not shardable, so the {world_size} ranks cannot split it: give it a `shard` "
            "parameter that defaults to the whole stream, e.g. `def train_stream(self, shard=Shard(0, 1))`, "
            "and yield only `shard.select(...)` of its batches; or use world_size=1"
        )
    if options.get("epoch_size", -1) <= 0 and options.get("cache", False) is False:
        import logging

        logging.getLogger("emloop_ds").warning(
            "%s is split over %d ranks by passes, so the ranks' batch counts per epoch may differ by one, "
            "and a rank with one batch more waits forever in an all-reduce; pass epoch_size=N so that every "
            "rank's epoch has N batches",
            description,
            world_size,
        )
    return rank, world_size


def _bind_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map arguments onto parameter names, accepting a name in second place and ``buffer`` for buffer_size."""
    unknown = sorted(set(kwargs) - _KEYWORD_PARAMETERS)
    if unknown:
        raise TypeError(f"StreamWrapper() got an unexpected keyword argument {unknown[0]!r}")
    names: tuple[str, ...] = _POSITIONAL_PARAMETERS
    if args and isinstance(args[0], str):
        names = ("name",)
        if len(args) > 1:
            raise TypeError(
                "StreamWrapper(stream_fn, name, ...) takes the other arguments by keyword, "
                "e.g. StreamWrapper(dataset.train_stream, 'train', buffer=16, epoch_size=1000)"
            )
    if len(args) > len(names):
        raise TypeError(f"StreamWrapper() takes at most {len(names) + 1} positional arguments")
    bound = dict(kwargs)
    for key, value in zip(names, args, strict=False):
        if key in bound:
            raise TypeError(f"StreamWrapper() got multiple values for argument {key!r}")
        bound[key] = value
    if "buffer" in bound:
        if "buffer_size" in bound:
            raise TypeError("StreamWrapper() got both buffer and buffer_size, two spellings of one argument")
        bound["buffer_size"] = bound.pop("buffer")
    return bound


def _check_arguments(stream_fn: object, options: dict[str, Any]) -> None:
    """Raise TypeError for an argument of the wrong type."""
    if not callable(stream_fn):
        raise TypeError(
            f"StreamWrapper() needs a function returning an iterable of batches, such as "
            f"dataset.train_stream, not a {type(stream_fn).__name__}"
        )
    for key in ("buffer_size", "epoch_size"):
        value = options.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"StreamWrapper() {key} must be an int, not {type(value).__name__}")
    checks = (("name", str, "a str or None"), ("profile", MutableMapping, "a dict or None"))
    for key, expected, description in checks:
        value = options.get(key)
        if value is not None and not isinstance(value, expected):
            raise TypeError(f"StreamWrapper() {key} must be {description}, not {type(value).__name__}")
    for key in ("eager", "ordered"):
        value = options.get(key, False)
        if not isinstance(value, bool):
            raise TypeError(f"StreamWrapper() {key} must be a bool, not {type(value).__name__}")
    workers = options.get("workers", 0)
    if not isinstance(workers, int) or isinstance(workers, bool):
        raise TypeError(f"StreamWrapper() workers must be an int, not {type(workers).__name__}")
    if workers < 0:
        raise ValueError(f"StreamWrapper() workers must be 0 (read in this process) or more, not {workers}")
    _check_engine_arguments(options)
    rank, world_size = options.get("rank", 0), options.get("world_size", 1)
    for key, value in (("rank", rank), ("world_size", world_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"StreamWrapper() {key} must be an int, not {type(value).__name__}")
    if not 0 <= rank < world_size:
        raise ValueError(
            f"StreamWrapper() needs 0 <= rank < world_size, not rank={rank}, world_size={world_size}"
        )
    if options.get("eager", False) and options.get("buffer_size", 0) < 1 and workers == 0:
        raise TypeError("StreamWrapper() eager=True needs a buffer: pass buffer_size of 1 or more")
    _check_cache_arguments(options)


def _check_cache_arguments(options: dict[str, Any]) -> None:
    """Raise for a malformed cache, shuffle or seed, and for shuffle or seed without a cache."""
    cache = options.get("cache", False)
    if not isinstance(cache, bool | str | os.PathLike) or cache == "":
        raise TypeError(f"StreamWrapper() cache must be True, False or a folder (str or path), not {cache!r}")
    shuffle, seed = options.get("shuffle", False), options.get("seed", 0)
    if not isinstance(shuffle, bool):
        raise TypeError(f"StreamWrapper() shuffle must be a bool, not {type(shuffle).__name__}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"StreamWrapper() seed must be an int, not {type(seed).__name__}")
    if cache is False and (shuffle or "seed" in options):
        raise ValueError(
            "StreamWrapper() shuffle and seed need a cache, which the shuffle permutes: pass cache=True "
            "(a dataset's stream method) or cache='DIR'; a stream can shuffle itself with "
            "shard.shared_seed(seed)"
        )


def _check_engine_arguments(options: dict[str, Any]) -> None:
    """Raise for an unknown engine, Dask without workers, or Dask's options without Dask."""
    engine = options.get("engine", "processes")
    if engine not in _ENGINES:
        raise ValueError(
            f"StreamWrapper() engine must be one of {', '.join(map(repr, _ENGINES))}, not {engine!r}"
        )
    if engine != "dask":
        for key in ("scheduler", "scheduler_timeout_s"):
            if key in options:
                raise TypeError(f"StreamWrapper() {key} needs engine='dask'")
        return
    if options.get("workers", 0) < 1:
        raise ValueError("StreamWrapper() engine='dask' needs workers=N, the number of shards to run on Dask")
    timeout_s = options.get("scheduler_timeout_s", 10.0)
    if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or timeout_s <= 0:
        raise ValueError(f"StreamWrapper() scheduler_timeout_s must be a number above 0, not {timeout_s!r}")
