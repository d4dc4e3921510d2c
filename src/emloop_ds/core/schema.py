"""Inspect streams: their sources' dtype, shape, value range, NaN and infinities, raggedness, statistics."""

from __future__ import annotations

import collections
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from emloop_ds.core.errors import StreamError, describe_exception

if TYPE_CHECKING:  # numpy, which core.stats needs, is imported only once a stream is inspected
    from emloop_ds.core.stats import SourceStats, StatsTally

__all__ = [
    "DatasetInfo",
    "SourceInfo",
    "StreamInfo",
    "describe_unequal_lengths",
    "inspect_batch",
    "inspect_dataset",
    "inspect_stream",
    "require_equal_lengths",
    "stream_names",
]

STREAM_SUFFIX = "_stream"


Number = float | int | bool
Shape = tuple[int | None, ...] | None


@dataclass(frozen=True)
class SourceInfo:
    """What one source of a stream holds.

    ``shape`` has ``None`` for a dimension that differs between the inspected batches, and is ``None``
    itself if even the number of dimensions differs. ``min``/``max`` are over the finite values, ``None``
    for non-numeric data; ``nan``, ``posinf`` and ``neginf`` count the non-finite values. ``stats`` is
    filled only when statistics are asked for.
    """

    name: str
    dtype: str
    shape: Shape
    min: Number | None
    max: Number | None
    ragged: bool
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    stats: SourceStats | None = None

    @property
    def non_finite(self) -> int:
        """How many values are NaN or infinite."""
        return self.nan + self.posinf + self.neginf


@dataclass(frozen=True)
class StreamInfo:
    """The sources of one stream, or the one-line error that makes it broken."""

    name: str
    sources: tuple[SourceInfo, ...]
    error: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """The findings for every stream of a dataset, named by its class path."""

    dataset: str
    streams: tuple[StreamInfo, ...]

    @property
    def broken_streams(self) -> tuple[StreamInfo, ...]:
        """The streams that raised, yielded something other than mappings, nothing, or unequal sources."""
        return tuple(stream for stream in self.streams if stream.error is not None)


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


def inspect_dataset(
    dataset: Any, batches: int = 1, dataset_name: str | None = None, stats: bool = False
) -> DatasetInfo:
    """Inspect the first ``batches`` batches of every stream; a broken stream is reported, not raised.

    With ``stats``, each stream is read a second time for the histograms (NOTE [bounded statistics]).
    """
    name = dataset_name or f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    streams = tuple(
        inspect_stream(stream, getattr(dataset, stream + STREAM_SUFFIX), batches, stats)
        for stream in stream_names(dataset)
    )
    return DatasetInfo(dataset=name, streams=streams)


def inspect_stream(
    name: str, stream_fn: Callable[[], Any], batches: int = 1, stats: bool = False
) -> StreamInfo:
    """Inspect the first ``batches`` batches of the stream returned by ``stream_fn``."""
    tallies: dict[str, StatsTally] | None = None
    if stats:
        from emloop_ds.core.stats import StatsTally

        tallies = collections.defaultdict(StatsTally)
    try:
        sources = _first_pass(stream_fn, batches, tallies)
    except _BrokenStreamError as exc:
        return StreamInfo(name, (), str(exc))
    except Exception as exc:
        return StreamInfo(name, (), describe_exception(exc))
    if tallies is None:
        return StreamInfo(name, tuple(sources.values()))
    try:
        return StreamInfo(name, _add_stats(sources, tallies, lambda: itertools.islice(stream_fn(), batches)))
    except Exception as exc:
        return StreamInfo(name, (), f"the second pass for statistics failed: {describe_exception(exc)}")


class _BrokenStreamError(Exception):
    """A stream yielded something that is not a batch; the message says what."""


def _first_pass(
    stream_fn: Callable[[], Any], batches: int, tallies: dict[str, StatsTally] | None
) -> dict[str, SourceInfo]:
    """Inspect the batches, feeding ``tallies`` if given; raise ``_BrokenStreamError`` for a non-batch."""
    sources: dict[str, SourceInfo] = {}
    number = 0
    for number, batch in enumerate(itertools.islice(stream_fn(), batches), start=1):
        if not isinstance(batch, Mapping):
            raise _BrokenStreamError(
                f"batch {number} is a {type(batch).__name__}, not a mapping of source names to examples"
            )
        unequal = describe_unequal_lengths(batch)
        if unequal is not None:
            raise _BrokenStreamError(f"batch {number} has {unequal}; {_ONE_VALUE_PER_EXAMPLE}")
        for source_name, values in batch.items():
            source, array = _inspect_source(str(source_name), values)
            earlier = sources.get(source.name)
            sources[source.name] = source if earlier is None else _merge(earlier, source)
            if tallies is not None:
                tallies[source.name].add(array)
    if number == 0:
        raise _BrokenStreamError("the stream yielded no batches")
    return sources


def _add_stats(
    sources: dict[str, SourceInfo], tallies: dict[str, StatsTally], read_again: Callable[[], Any]
) -> tuple[SourceInfo, ...]:
    """Run pass two for the histograms and attach each source's statistics."""
    from emloop_ds.core.stats import Histogram, count_histograms

    edges = {name: bins for name, tally in tallies.items() if (bins := tally.histogram_edges()) is not None}
    counts = count_histograms(read_again(), edges) if edges else {}
    return tuple(
        replace(
            source,
            stats=tallies[name].summarize(Histogram(edges[name], counts[name]) if name in edges else None),
        )
        for name, source in sources.items()
    )


_ONE_VALUE_PER_EXAMPLE = "make every source of a batch hold one value per example"


def describe_unequal_lengths(batch: Mapping[Any, Any]) -> str | None:
    """Say which sources of a batch differ in length, or return ``None`` if all sized sources agree."""
    lengths: dict[str, int] = {}
    for name, values in batch.items():
        try:
            lengths[str(name)] = len(values)
        except TypeError:  # a scalar or a 0-d array has no length to compare
            continue
    if len(set(lengths.values())) <= 1:
        return None
    listed = ", ".join(f"`{name}` {length}" for name, length in lengths.items())
    return f"sources of unequal length ({listed})"


def require_equal_lengths(batch: Mapping[Any, Any], stream: str, batch_number: int) -> None:
    """Raise ``StreamError`` if the sources of batch ``batch_number`` of ``stream`` differ in length."""
    unequal = describe_unequal_lengths(batch)
    if unequal is not None:
        raise StreamError(f"stream `{stream}` batch {batch_number} has {unequal}; {_ONE_VALUE_PER_EXAMPLE}")


def inspect_batch(batch: Mapping[str, Sequence[Any]]) -> list[SourceInfo]:
    """Describe each source of one batch."""
    return [_inspect_source(str(name), values)[0] for name, values in batch.items()]


def _inspect_source(name: str, values: Any) -> tuple[SourceInfo, Any]:
    """Describe one source of one batch; also return it as an array, ``None`` if it is not a regular one."""
    import numpy as np

    try:
        array = np.asarray(values)
    except ValueError:  # numpy refuses sequences of unequal lengths
        first = type(values[0]).__name__ if len(values) else "object"
        return SourceInfo(name, first, (len(values),), None, None, ragged=True), None
    ragged = array.dtype == object and array.ndim == 1 and len({np.shape(item) for item in array}) > 1
    source = SourceInfo(name, str(array.dtype), tuple(array.shape), None, None, ragged)
    if array.size == 0 or array.dtype.kind not in "biuf":
        return source, None if array.dtype == object else array
    return _with_value_range(source, array), array


def _with_value_range(source: SourceInfo, array: Any) -> SourceInfo:
    """Add the range of the finite values and the counts of NaN and infinities."""
    import numpy as np

    low, high = array.min(), array.max()  # NaN propagates, so finite bounds mean finite values
    if array.dtype.kind != "f" or (np.isfinite(low) and np.isfinite(high)):
        return replace(source, min=_number(low), max=_number(high))
    finite = np.isfinite(array)
    nan = int(np.count_nonzero(np.isnan(array)))
    posinf = int(np.count_nonzero(array == np.inf))
    neginf = array.size - int(np.count_nonzero(finite)) - nan - posinf
    counted = replace(source, nan=nan, posinf=posinf, neginf=neginf)
    if nan + posinf + neginf == array.size:
        return counted
    low = array.min(where=finite, initial=np.inf)  # where= spares a copy of the finite values
    high = array.max(where=finite, initial=-np.inf)
    return replace(counted, min=_number(low), max=_number(high))


def _number(value: Any) -> Number:
    if value.dtype.kind == "f":
        # str() of a numpy scalar is its shortest round-trip form: 0.1, not 0.10000000149011612 for float32.
        return float(str(value))
    return value.item()  # type: ignore[no-any-return]


def _merge(earlier: SourceInfo, later: SourceInfo) -> SourceInfo:
    """Combine a source's findings over two batches: the widest range, the counts, the common shape."""
    shape = _common_shape(earlier.shape, later.shape)
    ragged = earlier.ragged or later.ragged or shape is None or None in shape[1:]
    return replace(
        earlier,
        shape=shape,
        min=_pick(min, earlier.min, later.min),
        max=_pick(max, earlier.max, later.max),
        ragged=ragged,
        nan=earlier.nan + later.nan,
        posinf=earlier.posinf + later.posinf,
        neginf=earlier.neginf + later.neginf,
    )


def _common_shape(first: Shape, second: Shape) -> Shape:
    """Keep the dimensions on which both agree, ``None`` for the others (tf.data's ``element_spec`` rule)."""
    if first is None or second is None or len(first) != len(second):
        return None
    return tuple(a if a == b else None for a, b in zip(first, second, strict=True))


def _pick(choose: Callable[[Any, Any], Any], first: Any, second: Any) -> Any:
    if first is None:
        return second
    return first if second is None else choose(first, second)
