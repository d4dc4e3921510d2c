"""Inspect streams: their sources' dtype, shape, value range, NaN and infinities, raggedness, statistics."""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from emloop_ds.core.config import describe_type
from emloop_ds.core.errors import StreamError, describe_exception

if TYPE_CHECKING:  # numpy, which core.stats needs, is imported only once a stream is inspected
    from emloop_ds.core.stats import SourceStats, StatsTally

__all__ = [
    "DatasetInfo",
    "SourceInfo",
    "StreamInfo",
    "describe_other_sources",
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
    itself if even the number of dimensions differs; ``ragged`` means that the examples of one batch
    differ in length or shape (batches that differ from each other only widen ``shape``). ``min``/``max``
    are over the finite values, ``None`` for non-numeric data; ``nan``, ``posinf`` and ``neginf`` count the
    non-finite values. ``stats`` is filled only when statistics are asked for.
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
    """The sources of one stream, and the one-line error that makes it broken, if any.

    A stream is broken if it raises, yields nothing, or yields something that is not a batch: not a
    mapping, sources of unequal length, or other sources than its first batch. ``error`` names the batch;
    ``sources`` then holds the findings of the batches read before it.
    """

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
        """The streams that have an error (see ``StreamInfo``)."""
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
    """Inspect the first ``batches`` batches of the stream returned by ``stream_fn``.

    A stream that fails is reported with an error naming the batch, and with the sources of the batches
    read before it; a failing second pass (``stats``) keeps the first pass's findings, without statistics.
    """
    tallies: dict[str, StatsTally] | None = None
    if stats:
        from emloop_ds.core.stats import StatsTally

        tallies = collections.defaultdict(StatsTally)
    sources: dict[str, SourceInfo] = {}
    try:
        _first_pass(stream_fn, batches, sources, tallies)
    except _BrokenStreamError as exc:
        return StreamInfo(name, tuple(sources.values()), str(exc))
    if tallies is None:
        return StreamInfo(name, tuple(sources.values()))
    try:
        return StreamInfo(name, _add_stats(sources, tallies, stream_fn, batches))
    except _BrokenStreamError as exc:
        return StreamInfo(name, tuple(sources.values()), f"the second pass for statistics failed: {exc}")


class _BrokenStreamError(Exception):
    """A stream failed or yielded something that is not a batch; the message says what, naming the batch."""


def _read_batches(stream_fn: Callable[[], Any], batches: int) -> Iterator[tuple[int, Mapping[Any, Any]]]:
    """Yield the first ``batches`` batches with their numbers; a failure is a ``_BrokenStreamError``."""
    try:
        stream = stream_fn()
    except Exception as exc:
        raise _BrokenStreamError(describe_exception(exc)) from exc
    try:
        iterator = iter(stream)
    except TypeError as exc:
        raise _BrokenStreamError(
            f"the stream method returned a {type(stream).__name__}, not an iterable of batches"
        ) from exc
    for number in range(1, batches + 1):
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _BrokenStreamError(f"batch {number} raised {describe_exception(exc)}") from exc
        if not isinstance(batch, Mapping):
            raise _BrokenStreamError(
                f"batch {number} is {describe_type(batch)}, not a mapping of source names to examples"
            )
        yield number, batch


def _first_pass(
    stream_fn: Callable[[], Any],
    batches: int,
    sources: dict[str, SourceInfo],
    tallies: dict[str, StatsTally] | None,
) -> None:
    """Inspect the batches into ``sources``, feeding ``tallies`` if given.

    ``sources`` holds the findings of every batch read in full, also when a later one raises
    ``_BrokenStreamError``.
    """
    first_names: list[str] | None = None
    for number, batch in _read_batches(stream_fn, batches):
        try:  # the user's objects: their len() or conversion to an array may raise
            unequal = describe_unequal_lengths(batch)
            names = [str(source_name) for source_name in batch]
            found = [
                _inspect_source(name, values) for name, values in zip(names, batch.values(), strict=True)
            ]
        except Exception as exc:
            raise _BrokenStreamError(
                f"batch {number} could not be inspected: {describe_exception(exc)}"
            ) from exc
        if unequal is not None:
            raise _BrokenStreamError(f"batch {number} has {unequal}; {_ONE_VALUE_PER_EXAMPLE}")
        if first_names is None:
            first_names = names
        _require_same_sources(number, names, first_names, "batch 1")
        for source, array in found:  # merged only now: a batch counts once it was read in full
            earlier = sources.get(source.name)
            sources[source.name] = source if earlier is None else _merge(earlier, source)
            if tallies is not None:
                tallies[source.name].add(array)
    if first_names is None:
        raise _BrokenStreamError("the stream yielded no batches")


def _require_same_sources(number: int, names: Sequence[str], expected: Sequence[str], where: str) -> None:
    """Raise ``_BrokenStreamError`` unless batch ``number`` holds the sources ``expected`` (in any order)."""
    difference = describe_other_sources(names, expected)
    if difference is not None:
        raise _BrokenStreamError(
            f"batch {number} has other sources than {where} ({difference}); {_SAME_SOURCES_IN_EVERY_BATCH}"
        )


def _add_stats(
    sources: dict[str, SourceInfo], tallies: dict[str, StatsTally], stream_fn: Callable[[], Any], batches: int
) -> tuple[SourceInfo, ...]:
    """Run pass two for the histograms and attach each source's statistics."""
    from emloop_ds.core.stats import Histogram

    edges = {name: bins for name, tally in tallies.items() if (bins := tally.histogram_edges()) is not None}
    counts = _second_pass(stream_fn, batches, list(sources), edges) if edges else {}
    return tuple(
        replace(
            source,
            stats=tallies[name].summarize(Histogram(edges[name], counts[name]) if name in edges else None),
        )
        for name, source in sources.items()
    )


def _second_pass(
    stream_fn: Callable[[], Any], batches: int, expected: list[str], edges: dict[str, tuple[float, ...]]
) -> dict[str, tuple[int, ...]]:
    """Read the batches again, checking that they hold the sources the first pass found; count the bins."""
    from emloop_ds.core.stats import HistogramCounter

    counter = HistogramCounter(edges)
    for number, batch in _read_batches(stream_fn, batches):
        names = [str(name) for name in batch]
        _require_same_sources(number, names, expected, "the first pass")
        try:  # the user's objects: a source may have become irregular since the first pass
            counter.add(dict(zip(names, batch.values(), strict=True)))
        except Exception as exc:
            raise _BrokenStreamError(
                f"batch {number} could not be inspected: {describe_exception(exc)}"
            ) from exc
    return counter.counts()


_ONE_VALUE_PER_EXAMPLE = "make every source of a batch hold one value per example"
_SAME_SOURCES_IN_EVERY_BATCH = "make every batch of a stream hold the same sources"


def describe_other_sources(names: Sequence[str], expected: Sequence[str]) -> str | None:
    """Say which of ``expected`` a batch's source ``names`` lack and which they add, ``None`` if neither."""
    present, wanted = set(names), set(expected)
    if present == wanted:
        return None
    missing = [name for name in expected if name not in present]
    extra = [name for name in names if name not in wanted]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(f"`{name}`" for name in missing))
    if extra:
        parts.append("extra " + ", ".join(f"`{name}`" for name in extra))
    return "; ".join(parts)


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
    # Ragged means the examples of one batch differ; batches that differ from each other only widen the
    # shape to None (each batch may be padded to its own longest example).
    ragged = earlier.ragged or later.ragged
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
