"""Build a stream's cache under its lock, check it, and serve ``BaseDataset.cached``."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emloop_ds.core.cache.fingerprint import dataset_cache_dir, stream_cache_path
from emloop_ds.core.cache.lock import build_lock
from emloop_ds.core.cache.manifest import CacheInfo
from emloop_ds.core.cache.reader import CacheReader, is_sealed, read_info, remove_cache
from emloop_ds.core.cache.stream import open_sealed, stream_fingerprint
from emloop_ds.core.cache.writer import CacheWriter
from emloop_ds.core.dataset import AbstractDataset
from emloop_ds.core.errors import CacheError, ConfigError
from emloop_ds.core.schema import STREAM_SUFFIX
from emloop_ds.core.stream.shard import Shard, is_shardable
from emloop_ds.core.types import Batch

if TYPE_CHECKING:
    from emloop_ds.core.cache.writer import CacheWriter as Writer

__all__ = [
    "CacheCheck",
    "CacheResult",
    "cached_batches",
    "check_stream_cache",
    "clear_dataset_caches",
    "ensure_cache",
    "whole_pass",
]

_logger = logging.getLogger("emloop_ds")
_READERS_ATTRIBUTE = "_emloop_ds_cache_readers"


@dataclass(frozen=True)
class CacheResult:
    """What ``ensure_cache`` did: ``built``, or ``already complete``; the sealed cache's info and time."""

    status: str
    info: CacheInfo
    seconds: float


@dataclass(frozen=True)
class CacheCheck:
    """A stream cache's state on disk: ``ok``, ``damaged`` (with the problems) or ``missing``."""

    stream: str
    path: Path
    status: str
    problems: tuple[str, ...] = ()
    info: CacheInfo | None = None


def whole_pass(stream_fn: Callable[..., Iterable[Batch]], pass_number: int = 0) -> Iterable[Batch]:
    """Return one whole pass of a stream in this process: ``Shard(0, 1, pass_number)`` if it is shardable."""
    return stream_fn(shard=Shard(0, 1, pass_number)) if is_shardable(stream_fn) else stream_fn()


def ensure_cache(
    path: Path,
    fingerprint: str,
    description: str,
    make_batches: Callable[[], Iterable[Batch]],
    *,
    force: bool = False,
    on_batch: Callable[[Writer], object] | None = None,
) -> CacheResult:
    """Return the sealed cache at ``path``, building it from ``make_batches()`` under its lock if missing.

    Concurrent callers wait for one builder and then read its cache. ``force`` rebuilds a sealed cache.
    ``on_batch(writer)`` is called after each batch written, e.g. for progress.

    Raises:
        CacheError: if the cache cannot be written (the message says what to do); nothing is left behind.
    """
    started = time.perf_counter()
    with build_lock(path):
        if force:
            remove_cache(path)
        reader = open_sealed(path, fingerprint, description)
        if reader is not None:
            reader.close()
            return CacheResult("already complete", read_info(path), time.perf_counter() - started)
        with CacheWriter(path, fingerprint=fingerprint, description=description) as writer:
            for batch in make_batches():
                writer.append(batch)
                if on_batch is not None:
                    on_batch(writer)
            info = writer.seal()
    return CacheResult("built", info, time.perf_counter() - started)


def check_stream_cache(dataset: AbstractDataset, stream: str, root: Path | None = None) -> CacheCheck:
    """Verify a stream's cache without building it: the sizes and sha256 of every file."""
    path = stream_cache_path(dataset, stream, root)
    if not is_sealed(path):
        return CacheCheck(stream, path, "missing")
    try:
        with CacheReader.open(path) as reader:
            problems = tuple(reader.verify())
            info = reader.info
    except CacheError as exc:
        return CacheCheck(stream, path, "damaged", (str(exc),))
    if info.fingerprint != stream_fingerprint(dataset, stream):
        problems = (*problems, f"{path} was written for another fingerprint")
    return CacheCheck(stream, path, "damaged" if problems else "ok", problems, info)


def clear_dataset_caches(dataset: AbstractDataset, root: Path | None = None) -> Path | None:
    """Remove every cache of the dataset (its folder under the root); return the folder, None if none.

    Raises:
        CacheError: if the folder cannot be removed.
    """
    folder = dataset_cache_dir(dataset, root)
    if not folder.exists():
        return None
    for manifest in folder.glob("*/manifest.json"):  # unseal every cache before removing anything
        manifest.unlink(missing_ok=True)
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise CacheError(f"cannot remove the caches in {folder}: {exc.strerror}; remove it by hand") from exc
    return folder


def cached_batches(
    dataset: AbstractDataset, name: str, shard: Shard | None, shuffle: bool, seed: int
) -> Iterator[Batch]:
    """Serve ``BaseDataset.cached``: stream ``name``'s batches from its cache, built first if missing.

    With ``shard``, its part of the pass: batches ``index::count`` of the stream's batches, or of the
    shuffled permutation's batches of pass ``shard.epoch``, from the shard's batch ``start`` on.

    Raises:
        ConfigError: if the dataset has no stream ``name``.
    """
    stream_fn = getattr(dataset, name + STREAM_SUFFIX, None)
    if not callable(stream_fn):
        raise ConfigError(
            f"{type(dataset).__name__}.cached({name!r}) needs a method `{name}{STREAM_SUFFIX}`; give the "
            "stream's name without its suffix, e.g. cached('decoded') for decoded_stream"
        )
    reader = _reader(dataset, name, stream_fn)
    if reader is None:  # the cache cannot be written: this shard's part, straight from the stream
        return iter(stream_fn(shard=shard) if shard is not None and is_shardable(stream_fn) else stream_fn())
    part = Shard(shard.index, shard.count) if shard is not None else None
    start = shard.start if shard is not None else 0
    if shuffle:
        pass_number = shard.epoch if shard is not None else 0
        return reader.shuffled_batches(pass_number, seed=seed, shard=part, start=start)
    return reader.batches(shard=part, start=start)


def _reader(
    dataset: AbstractDataset, name: str, stream_fn: Callable[..., Iterable[Batch]]
) -> CacheReader | None:
    """Return the dataset's open reader of stream ``name``'s cache, building the cache first if missing."""
    readers: dict[str, CacheReader] = dataset.__dict__.setdefault(_READERS_ATTRIBUTE, {})
    if name in readers:
        return readers[name]
    description = f"stream `{name}` of {type(dataset).__name__}"
    path, fingerprint = stream_cache_path(dataset, name), stream_fingerprint(dataset, name)
    reader = open_sealed(path, fingerprint, description)
    if reader is None:
        _logger.info(
            "%s has no cache yet: it is built in this process first, and other readers wait for it; "
            "`emloop dataset cache CONFIG --stream %s --workers N` builds it ahead on N workers",
            description,
            name,
        )
        try:
            ensure_cache(path, fingerprint, description, lambda: whole_pass(stream_fn))
        except CacheError as exc:
            _logger.warning("%s: its cache is not written (%s); it is read from the stream", description, exc)
            return None
        reader = open_sealed(path, fingerprint, description)
    if reader is not None:
        readers[name] = reader
    return reader
