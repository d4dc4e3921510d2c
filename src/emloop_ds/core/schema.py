"""Inspect streams: the sources of their batches with dtype, shape, value range and raggedness."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from emloop_ds.core.errors import describe_exception

__all__ = [
    "DatasetInfo",
    "SourceInfo",
    "StreamInfo",
    "inspect_batch",
    "inspect_dataset",
    "inspect_stream",
    "stream_names",
]

STREAM_SUFFIX = "_stream"


@dataclass(frozen=True)
class SourceInfo:
    """What one source of a stream holds; ``min``/``max`` are ``None`` for non-numeric data."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    min: float | int | bool | None
    max: float | int | bool | None
    ragged: bool


@dataclass(frozen=True)
class StreamInfo:
    """The sources of one stream, or the one-line error that kept it from being read."""

    name: str
    sources: tuple[SourceInfo, ...]
    error: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """The findings for every stream of a dataset, named by its class path."""

    dataset: str
    streams: tuple[StreamInfo, ...]


def stream_names(dataset: Any) -> list[str]:
    """List the names of the public ``<name>_stream`` methods of ``dataset``, without the suffix."""
    return [
        name.removesuffix(STREAM_SUFFIX)
        for name, member in inspect.getmembers_static(type(dataset))
        if name.endswith(STREAM_SUFFIX)
        and name != STREAM_SUFFIX
        and not name.startswith("_")
        and callable(member)
    ]


def inspect_dataset(dataset: Any, batches: int = 1, dataset_name: str | None = None) -> DatasetInfo:
    """Inspect the first ``batches`` batches of every stream; a broken stream is reported, not raised."""
    name = dataset_name or f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    streams = tuple(
        inspect_stream(stream, getattr(dataset, stream + STREAM_SUFFIX), batches)
        for stream in stream_names(dataset)
    )
    return DatasetInfo(dataset=name, streams=streams)


def inspect_stream(name: str, stream_fn: Callable[[], Any], batches: int = 1) -> StreamInfo:
    """Inspect the first ``batches`` batches of the stream returned by ``stream_fn``."""
    sources: dict[str, SourceInfo] = {}
    try:
        seen = 0
        for batch in itertools.islice(stream_fn(), batches):
            if not isinstance(batch, Mapping):
                return StreamInfo(
                    name,
                    (),
                    f"a batch is a {type(batch).__name__}, not a mapping of source names to examples",
                )
            for source in inspect_batch(batch):
                earlier = sources.get(source.name)
                sources[source.name] = source if earlier is None else _merge(earlier, source)
            seen += 1
    except Exception as exc:
        return StreamInfo(name, (), describe_exception(exc))
    if seen == 0:
        return StreamInfo(name, (), "the stream yielded no batches")
    return StreamInfo(name, tuple(sources.values()))


def inspect_batch(batch: Mapping[str, Sequence[Any]]) -> list[SourceInfo]:
    """Describe each source of one batch."""
    return [_inspect_source(str(name), values) for name, values in batch.items()]


def _inspect_source(name: str, values: Any) -> SourceInfo:
    import numpy as np

    try:
        array = np.asarray(values)
    except ValueError:  # numpy refuses sequences of unequal lengths
        first = type(values[0]).__name__ if len(values) else "object"
        return SourceInfo(name, first, (len(values),), None, None, ragged=True)
    ragged = array.dtype == object and array.ndim == 1 and len({np.shape(item) for item in array}) > 1
    low, high = _value_range(array)
    return SourceInfo(name, str(array.dtype), tuple(array.shape), low, high, ragged)


def _value_range(array: Any) -> tuple[float | int | bool | None, float | int | bool | None]:
    import numpy as np

    if array.size == 0 or array.dtype.kind not in "biuf":
        return None, None
    if array.dtype.kind == "f":
        if np.isnan(array).all():
            return None, None
        # str() of a numpy scalar is its shortest round-trip form: 0.1, not 0.10000000149011612 for float32.
        return float(str(np.nanmin(array))), float(str(np.nanmax(array)))
    return array.min().item(), array.max().item()


def _merge(earlier: SourceInfo, later: SourceInfo) -> SourceInfo:
    """Combine a source's findings over two batches: the widest range, ragged if any inner shape differs."""
    ragged = earlier.ragged or later.ragged or earlier.shape[1:] != later.shape[1:]
    low = _pick(min, earlier.min, later.min)
    high = _pick(max, earlier.max, later.max)
    return replace(earlier, min=low, max=high, ragged=ragged)


def _pick(choose: Callable[[Any, Any], Any], first: Any, second: Any) -> Any:
    if first is None:
        return second
    return first if second is None else choose(first, second)
