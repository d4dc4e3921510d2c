"""Read a sealed cache: its batches in order, or shuffled per pass (``CacheReader``)."""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emloop_ds.core.cache.fingerprint import FORMAT_VERSION
from emloop_ds.core.cache.manifest import DATA_FILE, MANIFEST_FILE, REBUILD_HINT, CacheInfo, read_manifest
from emloop_ds.core.errors import CacheError
from emloop_ds.core.stream.shard import Shard
from emloop_ds.core.types import Batch

__all__ = ["CacheReader", "is_sealed", "read_info", "remove_cache"]

_HASH_BLOCK = 8 * 1024 * 1024


def is_sealed(path: Path) -> bool:
    """Return whether ``path`` holds a sealed cache: its manifest exists (``open`` checks more)."""
    return (Path(path) / MANIFEST_FILE).is_file()


def read_info(path: Path) -> CacheInfo:
    """Return the ``CacheInfo`` of the sealed cache at ``path`` from its manifest."""
    return read_manifest(Path(path), FORMAT_VERSION)


def remove_cache(path: Path) -> None:
    """Remove the cache at ``path`` and its unsealed leftovers (not its lock file); none is fine."""
    path = Path(path)
    try:
        if path.is_dir():
            # unseal first: a reader never sees a half-removed folder as a cache
            (path / MANIFEST_FILE).unlink(missing_ok=True)
            shutil.rmtree(path)
        for leftover in path.parent.glob(f".{path.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    except OSError as exc:
        raise CacheError(
            f"cannot remove the cache at {path}: {exc.strerror}; remove the folder by hand"
        ) from exc


class _SourceView:
    """Hold one source's per-chunk numpy views (tensors) or Arrow columns (strings, bytes)."""

    def __init__(
        self, kind: str, container: str, dtype: str | None, item_shape: tuple[int, ...] | None
    ) -> None:
        self.kind = kind
        self.container = container
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.item_shape = item_shape
        self.chunks: list[Any] = []  # fixed tensors: (rows, *item_shape) arrays; else per-chunk data
        self.offsets: list[np.ndarray[Any, Any]] = []  # ragged tensors: value offsets per chunk
        self.shapes: list[np.ndarray[Any, Any]] = []  # ragged tensors: (rows, ndim) per chunk
        # fixed tensors: NOTE [one gather]
        self.rows_view: np.ndarray[Any, Any] | None = None
        self.chunk_steps: np.ndarray[Any, Any] | None = None
        self.row_steps = 0


class CacheReader:
    """Read a sealed cache, memory-mapped: batches in order (no copy within a chunk) or shuffled."""

    def __init__(self, info: CacheInfo, mapped: Any, file_reader: Any) -> None:
        """Wrap an opened cache; use ``CacheReader.open``."""
        self.info = info
        self._mapped = mapped
        self._file_reader = file_reader
        lengths = np.asarray(info.batch_lengths, dtype=np.int64)
        self._batch_starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._batch_starts[1:])
        chunk_lengths = np.asarray(info.chunk_lengths, dtype=np.int64)
        self._chunk_starts = np.zeros(len(chunk_lengths) + 1, dtype=np.int64)
        np.cumsum(chunk_lengths, out=self._chunk_starts[1:])
        self._file_bytes: np.ndarray[Any, Any] | None = None
        if mapped is not None and info.files:
            mapped.seek(0)
            self._file_bytes = np.frombuffer(mapped.read_buffer(mapped.size()), dtype=np.uint8)
        self._sources = [self._views(index) for index in range(len(info.sources))]
        for source in self._sources:
            self._index_rows(source)

    @classmethod
    def open(cls, path: Path) -> CacheReader:
        """Open the sealed cache at ``path``: read its manifest, check file sizes and memory-map the data.

        Raises:
            CacheError: naming the file, if the cache is missing, truncated, of another version or garbage.
        """
        import pyarrow as pa

        path = Path(path)
        info = read_manifest(path, FORMAT_VERSION)
        for name, entry in info.files.items():
            file = path / name
            try:
                size = file.stat().st_size
            except FileNotFoundError:
                raise CacheError(f"cache file {file} is missing; {REBUILD_HINT}") from None
            if size != int(entry["bytes"]):
                raise CacheError(
                    f"cache file {file} has {size} bytes, its manifest says {entry['bytes']}: "
                    f"it is truncated or altered; {REBUILD_HINT}"
                )
        data = path / DATA_FILE
        try:
            mapped = pa.memory_map(str(data), "r")
            file_reader = pa.ipc.open_file(mapped)
            if file_reader.num_record_batches != len(info.chunk_lengths):
                raise CacheError(
                    f"cache file {data} has {file_reader.num_record_batches} record batches, "
                    f"its manifest says {len(info.chunk_lengths)}; {REBUILD_HINT}"
                )
            return cls(info, mapped, file_reader)
        except CacheError:
            raise
        except (pa.ArrowException, OSError, ValueError, KeyError, IndexError) as exc:
            raise CacheError(f"cache file {data} is damaged ({exc}); {REBUILD_HINT}") from exc

    @property
    def batch_count(self) -> int:
        """Return the number of the source's batches."""
        return self.info.batches

    @property
    def example_count(self) -> int:
        """Return the number of examples."""
        return self.info.examples

    def close(self) -> None:
        """Release the memory map (views handed out earlier keep it alive until they are dropped)."""
        self._sources = []
        self._file_reader = None
        if self._mapped is not None:
            self._mapped.close()
            self._mapped = None

    def __enter__(self) -> CacheReader:
        """Return the reader."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the reader."""
        self.close()

    def verify(self) -> list[str]:
        """Check the size and sha256 of every file; return the problems found (empty if sound)."""
        problems = []
        for name, entry in self.info.files.items():
            file = self.info.path / name
            digest = hashlib.sha256()
            size = 0
            try:
                with open(file, "rb") as handle:
                    while block := handle.read(_HASH_BLOCK):
                        digest.update(block)
                        size += len(block)
            except OSError as exc:
                problems.append(f"cannot read {file}: {exc.strerror}; {REBUILD_HINT}")
                continue
            if size != int(entry["bytes"]):
                problems.append(f"{file} has {size} bytes, expected {entry['bytes']}; {REBUILD_HINT}")
            elif digest.hexdigest() != entry["sha256"]:
                problems.append(
                    f"{file} has sha256 {digest.hexdigest()[:12]}…, expected {str(entry['sha256'])[:12]}…: "
                    f"it was altered; {REBUILD_HINT}"
                )
        return problems

    def batches(self, *, shard: Shard | None = None, start: int = 0) -> Iterator[Batch]:
        """Yield the source's batches as they were written; ``shard`` takes batches ``index::count``,
        ``start`` skips that many of the shard's batches."""
        indices = range(self.info.batches)
        if shard is not None:
            indices = indices[shard.index :: shard.count]
        for index in indices[start:]:
            begin, end = int(self._batch_starts[index]), int(self._batch_starts[index + 1])
            yield {
                layout.name: self._range(source, begin, end)
                for layout, source in zip(self.info.sources, self._sources, strict=True)
            }

    def pass_permutation(self, pass_number: int, seed: int = 0) -> np.ndarray[Any, Any]:
        """Return the order of all examples in shuffled pass ``pass_number``."""
        rng = np.random.default_rng(Shard(0, 1, pass_number).shared_seed(seed))
        return rng.permutation(self.info.examples)

    def shuffled_batches(
        self,
        pass_number: int,
        *,
        seed: int = 0,
        batch_size: int | None = None,
        shard: Shard | None = None,
        start: int = 0,
    ) -> Iterator[Batch]:
        """Yield a permutation of all examples, fixed by (``seed``, ``pass_number``), in batches of
        ``batch_size`` (default: the source's first batch length); ``shard`` takes batches ``index::count``,
        ``start`` skips that many of the shard's batches. Within a batch examples are in storage order."""
        total = self.info.examples
        if batch_size is None:
            batch_size = self.info.batch_lengths[0] if self.info.batch_lengths else 1
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, not {batch_size}")
        if total == 0:
            return
        order = self.pass_permutation(pass_number, seed)
        needs_touched = any(source.rows_view is None for source in self._sources)
        starts = range(0, total, batch_size)
        if shard is not None:
            starts = starts[shard.index :: shard.count]
        for begin in starts[start:]:
            rows = np.sort(order[begin : begin + batch_size])
            chunks = np.searchsorted(self._chunk_starts, rows, side="right") - 1
            local = rows - self._chunk_starts[chunks]
            touched = self._touched(rows) if needs_touched else []
            yield {
                layout.name: self._gather(source, rows, touched, chunks, local)
                for layout, source in zip(self.info.sources, self._sources, strict=True)
            }

    def _views(self, index: int) -> _SourceView:
        """Build one source's per-chunk views; memory-mapped record batches cost no copy."""
        layout = self.info.sources[index]
        view = _SourceView(layout.kind, layout.container, layout.dtype, layout.item_shape)
        schema_names = self._file_reader.schema.names
        column = schema_names.index(layout.name)
        for chunk in range(self._file_reader.num_record_batches):
            record_batch = self._file_reader.get_batch(chunk)
            array = record_batch.column(column)
            if layout.kind != "tensor":
                view.chunks.append(array)
                continue
            assert view.dtype is not None
            rows = len(array)
            if layout.ndim == 0:
                view.chunks.append(_numpy(array, view.dtype).reshape(rows))
                continue
            values = _numpy(array.values, view.dtype)
            if layout.item_shape is not None:
                view.chunks.append(values.reshape(rows, *layout.item_shape))
                continue
            view.chunks.append(values)
            view.offsets.append(array.offsets.to_numpy(zero_copy_only=True))
            shapes = record_batch.column(column + 1).values.to_numpy(zero_copy_only=True)
            view.shapes.append(shapes.reshape(rows, layout.ndim))
        return view

    def _locate(self, begin: int, end: int) -> Iterator[tuple[int, int, int]]:
        """Yield (chunk, local begin, local end) covering rows ``begin:end``."""
        chunk = int(np.searchsorted(self._chunk_starts, begin, side="right")) - 1
        while begin < end:
            chunk_start, chunk_end = int(self._chunk_starts[chunk]), int(self._chunk_starts[chunk + 1])
            stop = min(end, chunk_end)
            yield chunk, begin - chunk_start, stop - chunk_start
            begin = stop
            chunk += 1

    def _range(self, source: _SourceView, begin: int, end: int) -> Any:
        """Return rows ``begin:end`` of a source in its original container."""
        pieces = list(self._locate(begin, end))
        if source.kind != "tensor":
            items: list[Any] = []
            for chunk, low, high in pieces:
                items.extend(source.chunks[chunk].slice(low, high - low).to_pylist())
            return np.array(items) if source.container == "ndarray" else items
        if source.item_shape is not None or not source.offsets:
            parts = [source.chunks[chunk][low:high] for chunk, low, high in pieces]
            if not parts:
                array = np.empty((0, *(source.item_shape or ())), dtype=source.dtype)
            else:
                array = parts[0] if len(parts) == 1 else np.concatenate(parts)
            return _container(source, array)
        arrays = [
            item for chunk, low, high in pieces for item in self._ragged_items(source, chunk, low, high)
        ]
        if source.container == "ndarray":
            return np.stack(arrays) if arrays else np.empty((0,), dtype=source.dtype)
        return arrays

    def _ragged_items(
        self, source: _SourceView, chunk: int, low: int, high: int
    ) -> list[np.ndarray[Any, Any]]:
        offsets, shapes, values = source.offsets[chunk], source.shapes[chunk], source.chunks[chunk]
        return [values[offsets[row] : offsets[row + 1]].reshape(shapes[row]) for row in range(low, high)]

    def _index_rows(self, source: _SourceView) -> None:
        """Give a fixed-shape source one strided view of the file, whose rows start at every example.

        NOTE [one gather]: every example of a fixed-shape source is ``row_bytes`` long, at a byte offset
        ``chunk offset + row * row_bytes`` in the memory-mapped file. With ``step``, the gcd of those
        offsets, a read-only ``as_strided`` view ``(file bytes / step, row_bytes)`` with strides
        ``(step, 1)`` has a row starting at each example, so a shuffled batch is one fancy index however
        many chunks it touches, as a gather from one memory map is. The view never reaches past the file.
        """
        if self._file_bytes is None or source.kind != "tensor" or source.offsets or not source.chunks:
            return
        assert source.dtype is not None
        first = source.chunks[0]
        row_bytes = (
            int(first[0:1].nbytes) if len(first) else int(np.prod(first.shape[1:])) * source.dtype.itemsize
        )
        if row_bytes == 0:
            return
        base = int(self._file_bytes.__array_interface__["data"][0])
        offsets = [int(chunk.__array_interface__["data"][0]) - base for chunk in source.chunks]
        if any(
            offset < 0 or offset + chunk.nbytes > len(self._file_bytes)
            for offset, chunk in zip(offsets, source.chunks, strict=True)
        ):
            return  # not views of the one mapping (cannot happen with pa.memory_map; stay safe)
        step = math.gcd(row_bytes, *offsets)
        count = (len(self._file_bytes) - row_bytes) // step + 1
        source.rows_view = np.lib.stride_tricks.as_strided(
            self._file_bytes, shape=(count, row_bytes), strides=(step, 1), writeable=False
        )
        source.chunk_steps = np.asarray(offsets, dtype=np.int64) // step
        source.row_steps = row_bytes // step

    def _touched(self, rows: np.ndarray[Any, Any]) -> list[tuple[int, int, int]]:
        """Return (chunk, low, high) for each chunk holding some of the sorted ``rows[low:high]``.

        It costs O(rows log chunks), whatever the number of chunks.
        """
        chunks = np.searchsorted(self._chunk_starts, rows, side="right") - 1
        changes = np.flatnonzero(np.diff(chunks)) + 1
        lows = np.concatenate(([0], changes))
        highs = np.concatenate((changes, [len(rows)]))
        return [(int(chunks[low]), int(low), int(high)) for low, high in zip(lows, highs, strict=True)]

    def _gather(
        self,
        source: _SourceView,
        rows: np.ndarray[Any, Any],
        touched: list[tuple[int, int, int]],
        chunks: np.ndarray[Any, Any],
        local: np.ndarray[Any, Any],
    ) -> Any:
        """Return the sorted ``rows`` of a source: one fancy index for fixed tensors (NOTE [one gather])."""
        if source.rows_view is not None and source.chunk_steps is not None:
            assert source.dtype is not None
            shape = source.chunks[0].shape[1:]
            starts = source.chunk_steps[chunks] + local * source.row_steps
            # fancy indexing reads the strided view in place (np.take would first make it contiguous)
            out = source.rows_view[starts].view(source.dtype).reshape(len(rows), *shape)
            return _container(source, out)
        if source.kind != "tensor":
            items: list[Any] = []
            for chunk, low, high in touched:
                local = rows[low:high] - self._chunk_starts[chunk]
                items.extend(source.chunks[chunk].take(local).to_pylist())
            return np.array(items) if source.container == "ndarray" else items
        if source.item_shape is not None or not source.offsets:
            shape = source.chunks[0].shape[1:] if source.chunks else ()
            out = np.empty((len(rows), *shape), dtype=source.dtype)
            for chunk, low, high in touched:
                local = rows[low:high] - self._chunk_starts[chunk]
                # mode="clip": the rows are valid, and "raise" would buffer the output
                np.take(source.chunks[chunk], local, axis=0, out=out[low:high], mode="clip")
            return _container(source, out)
        arrays = []
        for chunk, low, high in touched:
            for row in rows[low:high] - self._chunk_starts[chunk]:
                arrays.extend(self._ragged_items(source, chunk, int(row), int(row) + 1))
        if source.container == "ndarray" and len({item.shape for item in arrays}) == 1:
            return np.stack(arrays)
        return arrays


def _numpy(array: Any, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """Return a zero-copy numpy view of an Arrow primitive array (booleans are stored as uint8)."""
    values = array.to_numpy(zero_copy_only=True)
    result: np.ndarray[Any, Any] = values.view(dtype) if values.dtype != dtype else values
    return result


def _container(source: _SourceView, array: np.ndarray[Any, Any]) -> Any:
    if source.container == "ndarray":
        return array
    if source.container == "arrays":
        return list(array)
    return array.tolist()
