"""Write a stream's batches into a cache folder, sealed by an atomic rename (``CacheWriter``)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import secrets
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from emloop_ds.core.cache.fingerprint import FORMAT_VERSION
from emloop_ds.core.cache.manifest import DATA_FILE, CacheInfo, SourceLayout, write_manifest
from emloop_ds.core.errors import CacheError
from emloop_ds.core.types import Batch

__all__ = ["CHUNK_BYTES", "CHUNK_ROWS", "CacheWriteError", "CacheWriter", "min_free_bytes"]

CHUNK_BYTES = 16 * 1024 * 1024
"""A record batch of the Arrow file holds examples up to about this many bytes ..."""
CHUNK_ROWS = 65536
"""... and at most this many examples."""

_NUMERIC_KINDS = "biuf"
_QUEUED = 2


class CacheWriteError(CacheError):
    """Report that the cache folder could not be written: a full disk or a folder without permission."""


def min_free_bytes(total: int) -> int:
    """Return the free space a cache leaves on a file system of ``total`` bytes: 1 GB or 5%, the smaller."""
    return min(1 << 30, total // 20)


def _disk_usage(path: Path) -> tuple[int, int]:
    usage = shutil.disk_usage(path)
    return usage.total, usage.free


class _HashingFile:
    """Write to a file and hash what is written (the sink of the Arrow writer)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha256.update(view)
        written = self._file.write(view)
        self.size += view.nbytes
        return written

    def flush(self) -> None:
        self._file.flush()

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def flush_to_disk(self) -> None:
        self._file.flush()
        os.fdatasync(self._file.fileno())

    def fsync_close(self) -> None:
        if not self.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()


class _Column:
    """Hold one source's layout and its pending values until the next chunk is written."""

    def __init__(self, layout: SourceLayout) -> None:
        self.layout = layout
        self.pending: list[Any] = []  # lists (string, binary)
        self.pending_shapes: list[np.ndarray[Any, Any]] = []
        # tensors: the chunk's flat values, copied in as batches arrive (the one copy the writer makes, so
        # that a stream may reuse its arrays after yielding them)
        self.buffer: np.ndarray[Any, Any] | None = None
        self.fill = 0

    def add_values(self, flat: np.ndarray[Any, Any], capacity: int) -> None:
        """Copy a batch's flat values into the chunk buffer, which holds ``capacity`` values or more."""
        end = self.fill + flat.size
        if self.buffer is None or end > len(self.buffer):
            grown = np.empty(max(capacity, end, 2 * self.fill), dtype=flat.dtype)
            if self.buffer is not None:
                grown[: self.fill] = self.buffer[: self.fill]
            self.buffer = grown
        self.buffer[self.fill : end] = flat.reshape(-1)
        self.fill = end

    def take(self) -> tuple[list[Any], list[np.ndarray[Any, Any]]]:
        """Return the chunk's values and shapes, and start the next chunk."""
        if self.layout.kind == "tensor":
            values: list[Any] = [
                self.buffer[: self.fill] if self.buffer is not None else np.empty(0, self.layout.dtype)
            ]
            self.buffer, self.fill = None, 0
        else:
            values, self.pending = self.pending, []
        shapes, self.pending_shapes = self.pending_shapes, []
        return values, shapes


class CacheWriter:
    """Write batches into a temporary folder beside ``path``; ``seal`` renames it to ``path`` atomically.

    Examples are grouped into large Arrow record batches (chunks) whatever the source's batch size; the
    source's batch lengths go into the manifest so that a reader gives back the same batches.
    """

    def __init__(
        self,
        path: Path,
        *,
        fingerprint: str,
        description: str,
        chunk_bytes: int = CHUNK_BYTES,
        chunk_rows: int = CHUNK_ROWS,
        disk_usage: Callable[[Path], tuple[int, int]] = _disk_usage,
    ) -> None:
        """Create the temporary folder; raise ``CacheWriteError`` if it cannot be made.

        ``disk_usage(folder)`` returns (total, free) bytes of the folder's file system; the writer stops
        before free space would drop below ``min_free_bytes(total)``.
        """
        self.path = Path(path)
        self._fingerprint = fingerprint
        self._description = description
        self._chunk_bytes = chunk_bytes
        self._chunk_rows = chunk_rows
        self._disk_usage = disk_usage
        self._columns: list[_Column] | None = None
        self._batch_lengths: list[int] = []
        self._chunk_lengths: list[int] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._written = 0
        self._done = False
        self._sink: _HashingFile | None = None
        self._arrow_writer: Any = None
        # NOTE [writer thread]: chunks are encoded, written, hashed and fdatasync'ed by one thread, so that
        # the file system and sha256 (both free of the GIL) overlap a GIL-bound stream. The consumer hands it
        # whole chunks through a queue of at most _QUEUED; the thread's first error is kept in _error and
        # raised by the next append or seal; after an error or an abort the thread only drains the queue.
        self._jobs: queue.Queue[list[tuple[SourceLayout, list[Any], list[Any]]] | None] = queue.Queue(_QUEUED)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._cancelled = False
        self._queued_bytes = 0
        self._flushed_bytes = 0
        _remove_stale_temporaries(self.path)
        self._temp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self._temp.mkdir(parents=True)
        except OSError as exc:
            raise _write_error(exc, self._temp) from exc

    @property
    def batches(self) -> int:
        """Return how many batches were appended."""
        return len(self._batch_lengths)

    @property
    def examples(self) -> int:
        """Return how many examples were appended."""
        return sum(self._batch_lengths)

    @property
    def bytes_written(self) -> int:
        """Return how many bytes were appended (written or pending)."""
        return self._written + self._pending_bytes

    def __enter__(self) -> CacheWriter:
        """Return the writer."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Abort if the block raised; an unsealed writer is aborted too."""
        if exc_type is not None or not self._done:
            self.abort()

    def append(self, batch: Batch) -> None:
        """Add one batch; raise ``CacheError`` for a source Arrow cannot hold or a changed dtype."""
        if self._done:
            raise ValueError("append to a cache writer that is sealed or aborted")
        number = len(self._batch_lengths)
        if self._columns is None:
            self._columns = [_Column(_layout_of(str(name), values, number)) for name, values in batch.items()]
        names = [column.layout.name for column in self._columns]
        if [str(name) for name in batch] != names:
            raise CacheError(
                f"batch {number} has sources {sorted(map(str, batch))}, the first batch had {names}; "
                "every batch of a cached stream must have the same sources"
            )
        length: int | None = None
        added = 0
        staged: list[tuple[_Column, Any, np.ndarray[Any, Any] | None, SourceLayout]] = []
        for column in self._columns:
            values = batch[column.layout.name]
            converted, shapes, layout, nbytes = _convert(column.layout, values, number)
            count = len(converted) if shapes is None or column.layout.kind != "tensor" else len(shapes)
            if column.layout.kind == "tensor" and shapes is None:
                count = int(converted.shape[0])
            if length is None:
                length = count
            elif count != length:
                raise CacheError(
                    f"batch {number}: source `{column.layout.name}` has {count} examples, "
                    f"another has {length}; "
                    "every source of a batch needs one value per example"
                )
            added += nbytes
            staged.append((column, converted, shapes, layout))
        self._check_disk(added)
        for column, converted, shapes, layout in staged:
            column.layout = layout
            if layout.kind == "tensor":
                column.add_values(converted, self._chunk_bytes // max(1, converted.dtype.itemsize))
            else:
                column.pending.append(converted)
            if shapes is not None and layout.kind == "tensor":
                column.pending_shapes.append(shapes)
        self._batch_lengths.append(length or 0)
        self._pending_rows += length or 0
        self._pending_bytes += added
        if self._pending_rows >= self._chunk_rows or self._pending_bytes >= self._chunk_bytes:
            self._flush()

    def seal(self) -> CacheInfo:
        """Write the last chunk and the manifest, fsync, and rename the folder to ``path``.

        If another builder sealed ``path`` first, drop this one's folder and return the existing cache's info.
        """
        from emloop_ds.core.cache.reader import is_sealed, read_info

        if self._done:
            raise ValueError("seal of a cache writer that is sealed or aborted")
        try:
            self._flush()
            self._stop_thread()
            self._raise_thread_error()
            if self._arrow_writer is None:  # an empty stream: an Arrow file with no record batch
                self._open_file()
            self._arrow_writer.close()
            assert self._sink is not None
            self._sink.fsync_close()
            data_bytes = self._sink.size
            info = CacheInfo(
                path=self.path,
                fingerprint=self._fingerprint,
                description=self._description,
                batches=len(self._batch_lengths),
                examples=sum(self._batch_lengths),
                bytes=data_bytes,
                sources=tuple(column.layout for column in self._columns or ()),
                batch_lengths=tuple(self._batch_lengths),
                chunk_lengths=tuple(self._chunk_lengths),
                files={DATA_FILE: {"bytes": data_bytes, "sha256": self._sink.sha256.hexdigest()}},
                format_version=FORMAT_VERSION,
            )
            write_manifest(self._temp, info)
            _fsync_folder(self._temp)
        except OSError as exc:
            self.abort()
            raise _write_error(exc, self._temp) from exc
        except BaseException:
            self.abort()
            raise
        if is_sealed(self.path):
            self.abort()
            return read_info(self.path)
        try:
            if self.path.exists():  # an unsealed leftover (no manifest) never counts as a cache
                shutil.rmtree(self.path, ignore_errors=True)
            os.rename(self._temp, self.path)
        except OSError as exc:
            self.abort()
            if is_sealed(self.path):  # another builder won the race between the check and the rename
                return read_info(self.path)
            raise _write_error(exc, self.path) from exc
        self._done = True
        with contextlib.suppress(OSError):
            _fsync_folder(self.path.parent)
        return read_info(self.path)

    def abort(self) -> None:
        """Remove the temporary folder and everything written; calling it again does nothing."""
        if self._done and not self._temp.exists():
            return
        self._done = True
        self._cancelled = True
        self._stop_thread()
        if self._sink is not None:
            with contextlib.suppress(Exception):
                self._sink.close()
        shutil.rmtree(self._temp, ignore_errors=True)

    def _check_disk(self, added: int) -> None:
        try:
            total, free = self._disk_usage(self._temp)
        except OSError as exc:
            raise _write_error(exc, self._temp) from exc
        reserve = min_free_bytes(total)
        unwritten = self._pending_bytes + self._queued_bytes - self._flushed_bytes
        if free - unwritten - added < reserve:
            self.abort()
            raise CacheError(
                f"the cache at {self.path} stopped after {self.batches} batches: writing on would leave less "
                f"than {reserve / 1e9:.2f} GB free ({free / 1e9:.2f} GB free now); "
                "what was written is removed. Free space, point the cache elsewhere "
                "(--cache-dir, $EMLOOP_DS_CACHE) or cap an endless stream"
            )

    def _open_file(self) -> None:
        import pyarrow as pa

        self._sink = _HashingFile(self._temp / DATA_FILE)
        self._arrow_writer = pa.ipc.new_file(
            pa.PythonFile(self._sink, mode="w"), _schema(self._columns or [])
        )

    def _flush(self) -> None:
        """Hand the pending examples to the writer thread as one chunk (NOTE [writer thread])."""
        self._raise_thread_error()
        if self._pending_rows == 0:
            return
        if self._arrow_writer is None:
            try:
                self._open_file()
            except OSError as exc:
                self.abort()
                raise _write_error(exc, self._temp) from exc
            self._thread = threading.Thread(target=self._drain, name="emloop-ds-cache-writer", daemon=True)
            self._thread.start()
        job = []
        for column in self._columns or []:
            values, shapes = column.take()
            job.append((column.layout, values, shapes))
        self._jobs.put(job)
        self._chunk_lengths.append(self._pending_rows)
        self._queued_bytes += self._pending_bytes
        self._written += self._pending_bytes
        self._pending_rows = 0
        self._pending_bytes = 0

    def _drain(self) -> None:
        """Write the queued chunks until the end marker (the writer thread's loop)."""
        import pyarrow as pa

        schema = _schema(self._columns or [])
        while (job := self._jobs.get()) is not None:
            if self._error is not None or self._cancelled:
                continue
            try:
                arrays: list[Any] = []
                nbytes = 0
                for layout, parts, shapes in job:
                    arrays.extend(_arrow_arrays(layout, parts, shapes))
                    nbytes += sum(getattr(part, "nbytes", 0) for part in parts)
                self._arrow_writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                assert self._sink is not None
                self._sink.flush_to_disk()
                self._flushed_bytes += nbytes
            except BaseException as exc:  # handed to the consumer (NOTE [writer thread])
                self._error = exc

    def _stop_thread(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _raise_thread_error(self) -> None:
        error = self._error
        if error is None:
            return
        self.abort()
        if isinstance(error, OSError):
            raise _write_error(error, self._temp) from error
        raise error


def _write_error(exc: OSError, where: Path) -> CacheWriteError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        advice = "free space or point the cache elsewhere (--cache-dir, $EMLOOP_DS_CACHE)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "make the folder writable or point the cache elsewhere (--cache-dir, $EMLOOP_DS_CACHE)"
    else:
        advice = "check the cache folder (--cache-dir, $EMLOOP_DS_CACHE)"
    return CacheWriteError(
        f"cannot write the cache at {where}: {reason}; what was written is removed. {advice}"
    )


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary folders of builders of ``path`` whose process is gone (a killed build)."""
    try:
        candidates = list(path.parent.glob(f".{path.name}.tmp-*"))
    except OSError:
        return
    for candidate in candidates:
        try:
            pid = int(candidate.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(values: Any) -> str:
    if isinstance(values, np.ndarray):
        return f"numpy array of {values.dtype}"
    return type(values).__name__


def _layout_of(name: str, values: Any, number: int) -> SourceLayout:
    """Decide a source's layout from its first batch."""
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            raise CacheError(
                f"source `{name}` of batch {number} is a 0-d array; a source needs one value per example"
            )
        if values.dtype.kind in "US":
            kind = "string" if values.dtype.kind == "U" else "binary"
            return SourceLayout(name, kind, "ndarray", values.dtype.str)
        _require_numeric(name, values.dtype, number)
        return SourceLayout(
            name, "tensor", "ndarray", values.dtype.str, tuple(values.shape[1:]), values.ndim - 1
        )
    if isinstance(values, (list, tuple)):
        if not values:
            raise CacheError(
                f"source `{name}` of batch {number} is empty; cache a stream whose first batch has data"
            )
        first = values[0]
        if isinstance(first, str):
            return SourceLayout(name, "string", "list")
        if isinstance(first, bytes):
            return SourceLayout(name, "binary", "list")
        if isinstance(first, np.ndarray):
            _require_numeric(name, first.dtype, number)
            shapes = {item.shape for item in values if isinstance(item, np.ndarray)}
            shape = next(iter(shapes)) if len(shapes) == 1 else None
            return SourceLayout(name, "tensor", "arrays", first.dtype.str, shape, first.ndim)
        if isinstance(first, (bool, int, float, np.generic)):
            array = _as_array(name, values, number)
            return SourceLayout(
                name, "tensor", "list", array.dtype.str, tuple(array.shape[1:]), array.ndim - 1
            )
        raise CacheError(
            f"source `{name}` of batch {number} holds {type(first).__name__} objects, "
            "which a cache cannot store; "
            "yield numpy arrays, numbers, str or bytes, or leave this stream uncached"
        )
    raise CacheError(
        f"source `{name}` of batch {number} is a {_describe(values)}, which a cache cannot store; "
        "yield a numpy array or a list of numbers, arrays, str or bytes"
    )


def _require_numeric(name: str, dtype: np.dtype[Any], number: int) -> None:
    if dtype.kind not in _NUMERIC_KINDS:
        raise CacheError(
            f"source `{name}` of batch {number} has dtype {dtype}, which a cache cannot store; "
            "yield numbers, booleans, str or bytes, or leave this stream uncached"
        )


def _as_array(name: str, values: Sequence[Any], number: int) -> np.ndarray[Any, Any]:
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise CacheError(f"source `{name}` of batch {number} cannot become one array: {exc}") from exc
    _require_numeric(name, array.dtype, number)
    return array


def _dtype_changed(layout: SourceLayout, dtype: str, number: int) -> CacheError:
    return CacheError(
        f"source `{layout.name}` changed dtype from {np.dtype(layout.dtype)} to {np.dtype(dtype)} "
        f"in batch {number}; "
        "a cached source keeps one dtype: cast it in the stream"
    )


def _convert(
    layout: SourceLayout, values: Any, number: int
) -> tuple[Any, np.ndarray[Any, Any] | None, SourceLayout, int]:
    """Return a batch's values of one source, per-example shapes if ragged, the updated layout and bytes."""
    if layout.kind in ("string", "binary"):
        items = values.tolist() if isinstance(values, np.ndarray) else list(values)
        wanted = str if layout.kind == "string" else bytes
        for item in items:
            if not isinstance(item, wanted):
                raise CacheError(
                    f"source `{layout.name}` of batch {number} mixes {wanted.__name__} "
                    f"with {type(item).__name__}; "
                    "a cached source keeps one type"
                )
        nbytes = sum(len(item) for item in items) + 8 * len(items)
        return items, None, layout, nbytes
    if layout.container == "arrays":
        arrays = list(values)
        for item in arrays:
            if not isinstance(item, np.ndarray):
                raise CacheError(
                    f"source `{layout.name}` of batch {number} mixes numpy arrays "
                    f"with {type(item).__name__}; "
                    "a cached source keeps one type"
                )
            if item.dtype.str != layout.dtype:
                raise _dtype_changed(layout, item.dtype.str, number)
            if item.ndim != layout.ndim:
                raise CacheError(
                    f"source `{layout.name}` changed from {layout.ndim} to {item.ndim} dimensions in batch "
                    f"{number}; a cached source keeps its number of dimensions"
                )
        item_shapes = np.array([item.shape for item in arrays], dtype=np.int64).reshape(
            len(arrays), layout.ndim
        )
        if layout.item_shape is not None and any(item.shape != layout.item_shape for item in arrays):
            layout = _ragged(layout)
        flat = np.concatenate([item.reshape(-1) for item in arrays]) if arrays else np.empty(0, layout.dtype)
        return flat, item_shapes, layout, flat.nbytes + item_shapes.nbytes
    array = values if isinstance(values, np.ndarray) else _as_array(layout.name, values, number)
    if layout.container == "ndarray" and not isinstance(values, np.ndarray):
        raise CacheError(
            f"source `{layout.name}` of batch {number} is a {_describe(values)}, "
            "earlier batches gave numpy arrays; "
            "a cached source keeps one type"
        )
    if array.dtype.str != layout.dtype:
        raise _dtype_changed(layout, array.dtype.str, number)
    if array.ndim - 1 != layout.ndim:
        raise CacheError(
            f"source `{layout.name}` changed from {layout.ndim} to {array.ndim - 1} dimensions "
            f"per example in batch {number}; a cached source keeps its number of dimensions"
        )
    shapes: np.ndarray[Any, Any] | None = None
    if layout.ndim > 0:
        shapes = np.broadcast_to(np.array(array.shape[1:], dtype=np.int64), (array.shape[0], layout.ndim))
        if layout.item_shape is not None and tuple(array.shape[1:]) != layout.item_shape:
            layout = _ragged(layout)
    return np.ascontiguousarray(array), shapes, layout, array.nbytes


def _ragged(layout: SourceLayout) -> SourceLayout:
    return SourceLayout(layout.name, layout.kind, layout.container, layout.dtype, None, layout.ndim)


def _schema(columns: Sequence[_Column]) -> Any:
    import pyarrow as pa

    fields = []
    for column in columns:
        layout = column.layout
        if layout.kind == "string":
            fields.append(pa.field(layout.name, pa.large_string()))
        elif layout.kind == "binary":
            fields.append(pa.field(layout.name, pa.large_binary()))
        elif layout.ndim == 0:
            fields.append(pa.field(layout.name, _value_type(layout)))
        else:
            fields.append(pa.field(layout.name, pa.large_list(_value_type(layout))))
            fields.append(pa.field(f"{layout.name}.shape", pa.list_(pa.int64(), layout.ndim)))
    return pa.schema(fields)


def _value_type(layout: SourceLayout) -> Any:
    import pyarrow as pa

    dtype = np.dtype(layout.dtype)
    if dtype.kind == "b":  # stored as uint8, so that a numpy view needs no unpacking of bits
        return pa.uint8()
    return pa.from_numpy_dtype(dtype.newbyteorder("="))


def _arrow_arrays(layout: SourceLayout, parts: list[Any], pending_shapes: list[Any]) -> list[Any]:
    """Return the Arrow arrays of a column's pending values: one per field of ``_schema``."""
    import pyarrow as pa

    if layout.kind == "string":
        return [pa.array([item for part in parts for item in part], type=pa.large_string())]
    if layout.kind == "binary":
        return [pa.array([item for part in parts for item in part], type=pa.large_binary())]
    flat = np.concatenate([part.reshape(-1) for part in parts]) if len(parts) != 1 else parts[0].reshape(-1)
    if flat.dtype.kind == "b":
        flat = flat.view(np.uint8)
    if not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    values = pa.Array.from_buffers(_value_type(layout), len(flat), [None, pa.py_buffer(flat)])
    if layout.ndim == 0:
        return [values]
    shapes = np.concatenate(pending_shapes) if len(pending_shapes) != 1 else pending_shapes[0]
    sizes = np.prod(shapes, axis=1, dtype=np.int64)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), values)
    shape_values = pa.array(np.ascontiguousarray(shapes, dtype=np.int64).reshape(-1), type=pa.int64())
    shape_lists = pa.FixedSizeListArray.from_arrays(shape_values, layout.ndim)
    return [lists, shape_lists]
