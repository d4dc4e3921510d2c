"""Serve a ``StreamWrapper(..., cache=...)``'s passes from the stream's cache (``CachedStream``).

NOTE [cached passes]
``CachedStream`` is itself a shardable stream function: the wrapper's ``EpochCutter`` calls it with
``Shard(0, 1, pass, start)`` for every pass, so epoch cutting, buffering and resume work on it exactly as
on any stream. For each pass it either reads the sealed cache (in order, or shuffled by the pass's
permutation) from batch ``start`` on, which is a seek; or, while there is no sealed cache, it reads the
stream's pass and writes every batch through into a new cache, sealed when the pass ends. A pass that
does not end (the wrapper closes first) aborts the writer, leaving nothing that counts as a cache.

- A pass resumed mid-way while the cache is still being written is made from its start, so that the
  cache holds the whole pass; the batches before ``start`` are written but not delivered.
- With workers, the written-through pass is read from a ``WorkerSource`` over the whole stream, merged
  in order, so the cache holds the stream's batches in stream order whatever the engine. The workers
  are stopped once the cache is sealed; a wrapper that finds a sealed cache never starts them.
- With ranks (``world_size > 1``) a rank needs the whole cache before it can read its part, so the first
  rank to take the cache's build lock builds it from the whole stream and the others wait for it. Each
  rank then reads batches ``rank::world_size`` of the pass, cut to the same count on every rank.
- Writing is an optimisation and never fails the read: a cache that cannot be written (a full disk, a
  folder without permission, a source Arrow cannot hold) gives one warning, what was written is removed
  and the passes are read from the stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emloop_ds.core.dataset import AbstractDataset
from emloop_ds.core.errors import CacheError, ConfigError
from emloop_ds.core.schema import STREAM_SUFFIX
from emloop_ds.core.stream.shard import Shard, is_shardable
from emloop_ds.core.types import Batch

if TYPE_CHECKING:
    from emloop_ds.core.cache.reader import CacheReader
    from emloop_ds.core.stream.epochs import EpochCutter
    from emloop_ds.core.stream.worker_source import WorkerSource

__all__ = ["CacheSource", "CachedStream", "cache_target", "open_sealed", "stream_fingerprint"]

_logger = logging.getLogger("emloop_ds")


def stream_fingerprint(dataset: AbstractDataset, stream: str) -> str:
    """Return the sha256 hex of one of a dataset's streams: its dataset's fingerprint and its name."""
    from emloop_ds.core.cache.fingerprint import dataset_fingerprint

    return hashlib.sha256(f"{dataset_fingerprint(dataset)}\0{stream}".encode()).hexdigest()


def dataset_stream_name(stream_fn: Callable[..., Any]) -> tuple[AbstractDataset, str] | None:
    """Return ``(dataset, "train")`` for a dataset's ``train_stream`` method, None for any other callable."""
    dataset = getattr(stream_fn, "__self__", None)
    name = getattr(getattr(stream_fn, "__func__", None), "__name__", "")
    if (
        isinstance(dataset, AbstractDataset)
        and name.endswith(STREAM_SUFFIX)
        and len(name) > len(STREAM_SUFFIX)
    ):
        return dataset, name[: -len(STREAM_SUFFIX)]
    return None


def cache_target(
    stream_fn: Callable[..., Any], cache: bool | str | os.PathLike[str], description: str
) -> tuple[Path, str]:
    """Return the cache folder and fingerprint of ``stream_fn`` for ``StreamWrapper``'s ``cache`` argument.

    A dataset's stream method is placed under the cache root (``cache=True``) or under the folder given;
    any other callable needs a folder, and is fingerprinted by its qualified name and its module's source.

    Raises:
        ConfigError: if ``cache=True`` and ``stream_fn`` is not a dataset's stream method.
    """
    from emloop_ds.core.cache.fingerprint import callable_cache_path, callable_fingerprint, stream_cache_path

    found = dataset_stream_name(stream_fn)
    folder = None if isinstance(cache, bool) else Path(cache)
    if found is not None:
        dataset, name = found
        return stream_cache_path(dataset, name, folder), stream_fingerprint(dataset, name)
    if folder is None:
        name = getattr(stream_fn, "__qualname__", repr(stream_fn))
        raise ConfigError(
            f"{description} ({name}) is not a dataset's `<name>_stream` method, so cache=True has no "
            "fingerprint to find its cache by; pass cache='DIR', a folder for its cache (fingerprinted by "
            "the function's qualified name and its module's source)"
        )
    return callable_cache_path(stream_fn, folder), callable_fingerprint(stream_fn)


def open_sealed(path: Path, fingerprint: str, description: str) -> CacheReader | None:
    """Open the sealed cache at ``path``; None if there is none, or (with a warning) it is damaged or stale.

    A damaged or stale cache is removed, so that the next write can seal in its place.
    """
    from emloop_ds.core.cache.reader import CacheReader, is_sealed, remove_cache

    if not is_sealed(path):
        return None
    try:
        reader = CacheReader.open(path)
    except CacheError as exc:
        problem = str(exc).split("; rebuild it with", 1)[0]  # rebuilt right here: no advice to rebuild
    else:
        if reader.info.fingerprint == fingerprint:
            return reader
        reader.close()
        problem = f"the cache at {path} was written for another fingerprint"
    _logger.warning("%s: %s; the cache is removed and written again", description, problem)
    try:
        remove_cache(path)
    except CacheError as exc:
        _logger.warning("%s: %s", description, exc)
    return None


class CachedStream:
    """A shardable stream function over a stream's cache: NOTE [cached passes]."""

    def __init__(
        self,
        stream_fn: Callable[..., Iterable[Batch]],
        path: Path,
        fingerprint: str,
        description: str,
        *,
        shuffle: bool = False,
        seed: int = 0,
        ranks: tuple[int, int] | None = None,
        workers: WorkerSource | None = None,
    ) -> None:
        """Read the passes of ``stream_fn`` from the cache at ``path``, writing it through if it is missing.

        ``ranks`` is ``(rank, world_size)`` in a data-parallel job; ``workers`` runs the written pass.
        """
        self._stream_fn = stream_fn
        self.path = Path(path)
        self._fingerprint = fingerprint
        self._description = description
        self._is_shuffled = shuffle
        self._seed = seed
        self._rank, self._world_size = ranks or (0, 1)
        self._workers = workers
        self._is_shardable = is_shardable(stream_fn)
        self._reader = open_sealed(self.path, fingerprint, description)
        self.mode: str | None = "read" if self._reader is not None else "write"
        """``"read"`` from a cache sealed before, ``"write"`` writing it, None once writing failed."""
        self._is_remainder_logged = False
        self._active: Generator[Batch] | None = None
        if self._reader is not None:
            self._close_workers()

    @property
    def needs_workers(self) -> bool:
        """Return whether passes may still be read from the workers (no sealed cache yet)."""
        return self._workers is not None and self._reader is None

    @property
    def workers(self) -> WorkerSource | None:
        """Return the worker source that runs the written pass, or None."""
        return self._workers

    def __call__(self, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:  # noqa: B008 (immutable)
        """Return the batches of pass ``shard.epoch`` from batch ``shard.start`` on."""
        if self._reader is None and self._world_size > 1:
            if self.mode is not None:
                self._build_whole()
            if self._reader is None:  # the build failed: this rank's part, straight from the stream
                part = Shard(self._rank, self._world_size, shard.epoch, shard.start)
                return iter(self._stream_fn(shard=part))
        if self._reader is not None:
            return self._from_cache(self._reader, shard.epoch, shard.start)
        self._active = self._write_through(shard.epoch, shard.start)
        return self._active

    def close(self) -> None:
        """Abort a write that has not ended, stop the workers and release the cache; idempotent."""
        active, self._active = self._active, None
        if active is not None:
            # running in a producer thread right now (ValueError): it is aborted when collected
            with contextlib.suppress(ValueError):
                active.close()
        self._close_workers()
        if self._reader is not None:
            self._reader.close()

    def _from_cache(self, reader: CacheReader, pass_number: int, start: int) -> Iterator[Batch]:
        """Return the pass's batches from the cache (this rank's part), from batch ``start`` on."""
        shard = Shard(self._rank, self._world_size) if self._world_size > 1 else None
        if self._is_shuffled:
            batches = reader.shuffled_batches(pass_number, seed=self._seed, shard=shard, start=start)
            size = reader.info.batch_lengths[0] if reader.info.batch_lengths else 1
            total = -(-reader.example_count // size)
        else:
            batches = reader.batches(shard=shard, start=start)
            total = reader.batch_count
        if self._world_size == 1:
            return batches
        per_rank, dropped = divmod(total, self._world_size)
        if dropped and not self._is_remainder_logged:
            self._is_remainder_logged = True
            _logger.info(
                "%s: each of the %d ranks reads %d of the cache's %d batches per pass, so that their counts "
                "are equal; the last %d are dropped%s",
                self._description,
                self._world_size,
                per_rank,
                total,
                dropped,
                " (other examples each pass, as it is shuffled)" if self._is_shuffled else "",
            )
        return itertools.islice(batches, max(per_rank - start, 0))

    def _write_through(self, pass_number: int, start: int) -> Generator[Batch]:
        """Yield the stream's pass from batch ``start`` on, writing all of it into a new cache."""
        writer = self._new_writer() if self.mode is not None else None
        if writer is not None and start > 0:
            _logger.info(
                "%s resumes inside the pass that writes its cache: its first %d batches are made again "
                "for the cache, not delivered",
                self._description,
                start,
            )
        if writer is None and start > 0 and self._is_shardable and self._workers is None:
            yield from self._stream_fn(shard=Shard(0, 1, pass_number, start))
            return
        is_complete = False
        try:
            for number, batch in enumerate(self._pass_batches(pass_number)):
                if writer is not None:
                    try:
                        writer.append(batch)
                    except CacheError as exc:
                        self._give_up(exc)
                        writer.abort()
                        writer = None
                if number >= start:
                    yield batch
            is_complete = True
        finally:
            if writer is not None:
                if is_complete:
                    self._seal(writer)
                else:
                    writer.abort()

    def _pass_batches(self, pass_number: int) -> Iterator[Batch]:
        """Return the iterator of one whole pass of the stream, on the workers or in this process."""
        from emloop_ds.core.cache.build import whole_pass

        if self._workers is not None:
            return _until_epoch_end(self._workers.next_batch)
        return iter(whole_pass(self._stream_fn, pass_number))

    def _new_writer(self) -> Any:
        from emloop_ds.core.cache.writer import CacheWriter

        try:
            return CacheWriter(self.path, fingerprint=self._fingerprint, description=self._description)
        except CacheError as exc:
            self._give_up(exc)
            return None

    def _seal(self, writer: Any) -> None:
        """Seal the written pass and read every later pass from it; the workers are no longer needed."""
        from emloop_ds.core.cache.reader import CacheReader

        self._active = None
        try:
            writer.seal()
            self._reader = CacheReader.open(self.path)
        except CacheError as exc:
            self._give_up(exc)
            return
        self._close_workers()

    def _build_whole(self) -> None:
        """Build the whole cache under its lock unless another rank sealed it first (NOTE [cached passes])."""
        from emloop_ds.core.cache.build import ensure_cache
        from emloop_ds.core.cache.reader import is_sealed

        if not is_sealed(self.path):
            _logger.info(
                "%s: rank %d builds the cache from the whole stream, unless another rank does, before the "
                "ranks read their parts",
                self._description,
                self._rank,
            )
        try:
            result = ensure_cache(
                self.path, self._fingerprint, self._description, lambda: self._pass_batches(0)
            )
        except CacheError as exc:
            self._give_up(exc)
            return
        self.mode = "write" if result.status == "built" else "read"
        self._reader = open_sealed(self.path, self._fingerprint, self._description)
        if self._reader is not None:
            self._close_workers()

    def _give_up(self, exc: CacheError) -> None:
        """Warn once that the cache is not written, and read the stream from now on."""
        if self.mode is not None:
            _logger.warning(
                "%s: its cache is not written (%s); reading goes on from the stream", self._description, exc
            )
        self.mode = None

    def _close_workers(self) -> None:
        if self._workers is not None:
            self._workers.close()


def _until_epoch_end(next_batch: Callable[[], Batch | None]) -> Iterator[Batch]:
    while (batch := next_batch()) is not None:
        yield batch


class CacheSource:
    """The ``BatchSource`` of a cached wrapper with workers: the reader's thread cuts the epochs, and the
    workers run only while the cache is not sealed (NOTE [cached passes])."""

    def __init__(self, epochs: EpochCutter, cached: CachedStream) -> None:
        """Cut ``epochs`` in the reader's thread over ``cached``, whose workers ``start`` starts."""
        self._epochs = epochs
        self._cached = cached
        self.next_batch = epochs.next_batch

    def start(self) -> None:
        """Start (or resume) the workers while the cache is still to be written."""
        if self._cached.needs_workers and self._cached.workers is not None:
            self._cached.workers.start()

    def stop(self) -> None:
        """Pause the workers, if running."""
        if self._cached.workers is not None:
            self._cached.workers.stop()

    def empty(self) -> bool:
        """Return True: the reader's thread reads the cache; the workers' merge is behind it."""
        return True

    @property
    def allow_buffering(self) -> AbstractContextManager[None]:
        """Return a context that does nothing: workers never share the reader's GIL."""
        return self._epochs.allow_buffering
