"""Compute the statistics of ``emloop dataset info --stats``: moments, histograms and value counts.

NOTE [bounded statistics]
Pass one feeds each inspected batch to a ``StatsTally`` per source: mean and variance merge batch by batch
with Chan's parallel algorithm (exact up to float64 rounding, three numbers per source), and the distinct
values are counted until there are more than ``MAX_DISTINCT_VALUES``. Pass two reads the batches again and
fills ``HISTOGRAM_BINS`` bins over the finite range found by pass one. Both passes walk a batch in chunks of
``CHUNK_VALUES`` values, so memory is one batch plus temporaries of a fixed size, however many batches are
inspected. NaN and infinities are left out of the moments and the histogram (``core.schema`` counts them).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emloop_ds.core.config import describe_type

__all__ = [
    "HISTOGRAM_BINS",
    "MAX_DISTINCT_VALUES",
    "Histogram",
    "HistogramCounter",
    "Moments",
    "SourceStats",
    "StatsTally",
    "count_histograms",
]

HISTOGRAM_BINS = 8
MAX_DISTINCT_VALUES = 20
CHUNK_VALUES = 1 << 20
_BINCOUNT_SPAN = 1 << 16  # integer values spanning less than this are counted with bincount, not sorted
_INTP_LIMIT = 1 << 62
_SMALL_CHUNK = 2048

Value = int | bool | str


@dataclass(frozen=True)
class Histogram:
    """Counts of values in ``HISTOGRAM_BINS`` equal bins; the last bin includes its right edge."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class SourceStats:
    """The statistics of one source; a figure that does not apply, found no value or overflows is ``None``.

    ``std`` is the population standard deviation (numpy's default, ``ddof=0``). ``values`` maps each
    value to its count, in ascending order of value, for sources of at most ``MAX_DISTINCT_VALUES``
    distinct integers, booleans or strings. ``count`` is the number of finite values in the moments.
    """

    mean: float | None
    std: float | None
    histogram: Histogram | None
    values: Mapping[Value, int] | None
    count: int = 0


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations of some values, mergeable by Chan's parallel algorithm."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray[Any, Any]) -> Moments:
        """Return the moments of a one-dimensional array of finite numbers."""
        if values.size == 0:
            return cls()
        deviations = values.astype(np.float64)  # a copy: subtracting in place must not touch the batch
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308 overflow to inf, not raise
            mean = float(deviations.mean())
            deviations -= mean
            # einsum, not a BLAS dot: several times faster here when BLAS threads compete for the cores
            return cls(int(values.size), mean, float(np.einsum("i,i->", deviations, deviations)))

    def merge(self, other: Moments) -> Moments:
        """Return the moments of the values of both."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / count)
        return Moments(count, mean, m2)

    @property
    def std(self) -> float | None:
        """The population standard deviation, ``None`` without values."""
        return math.sqrt(self.m2 / self.count) if self.count else None


class StatsTally:
    """Accumulate the moments, finite range and value counts of one source over the batches of pass one."""

    def __init__(self) -> None:
        """Start with no values seen."""
        self.moments = Moments()
        self.low: float | None = None
        self.high: float | None = None
        self.is_numeric = True
        self.values: Counter[Value] | None = Counter()
        self._values_kind: str | None = None

    def add(self, array: np.ndarray[Any, Any] | None) -> None:
        """Add one batch of the source; ``None`` stands for values that are not a regular array."""
        kind = None if array is None else _KINDS.get(array.dtype.kind)
        if array is None or kind not in ("int", "float"):
            self.is_numeric = False
        if kind not in ("bool", "int", "str") or self._values_kind not in (None, kind):
            self.values = None  # also when the kind changes: True == 1 would merge their counts
        self._values_kind = kind
        if array is None:
            return
        if self.is_numeric:
            for chunk in _finite_chunks(array):
                self._add_numbers(chunk)
        if self.values is not None:
            self.values = _merge_counts(self.values, _count_values(array))

    def _add_numbers(self, chunk: np.ndarray[Any, Any]) -> None:
        if chunk.size == 0:
            return
        self.moments = self.moments.merge(Moments.of(chunk))
        low, high = float(chunk.min()), float(chunk.max())
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def histogram_edges(self) -> tuple[float, ...] | None:
        """Return the bin edges for pass two, ``None`` if the source gets no histogram.

        Equal bounds are widened by 0.5 each way (as numpy does); a range too wide for float64 gets none.
        """
        if not self.is_numeric or self.low is None or self.high is None:
            return None
        if not math.isfinite(self.high - self.low):
            return None
        edges = np.histogram_bin_edges(np.empty(0), bins=HISTOGRAM_BINS, range=(self.low, self.high))
        return tuple(float(edge) for edge in edges)

    def summarize(self, histogram: Histogram | None) -> SourceStats:
        """Return the statistics, with the histogram that pass two filled."""
        numeric = self.is_numeric and self.moments.count > 0
        return SourceStats(
            mean=_finite_or_none(self.moments.mean) if numeric else None,
            std=_finite_or_none(self.moments.std) if numeric else None,
            histogram=histogram if numeric else None,
            values=None if self.values is None else dict(sorted(self.values.items())),
            count=self.moments.count if self.is_numeric else 0,
        )


def _finite_or_none(value: float | None) -> float | None:
    # Values near ±1e308 overflow the sums of float64: such a figure is unknown, not infinite.
    return value if value is not None and math.isfinite(value) else None


_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float", "U": "str"}


class HistogramCounter:
    """Pass two: count each source's finite values in the bins of ``edges``, one batch at a time."""

    def __init__(self, edges: Mapping[str, tuple[float, ...]]) -> None:
        """Start with empty bins for each source of ``edges``."""
        self._edges = {name: np.array(source_edges, dtype=np.float64) for name, source_edges in edges.items()}
        self._counts = {name: np.zeros(HISTOGRAM_BINS, dtype=np.int64) for name in edges}

    def add(self, batch: Mapping[str, Any]) -> None:
        """Count the values of one batch; values outside the edges are left out.

        Raises:
            KeyError: if the batch lacks one of the sources.
            ValueError: if a source is not a regular array of numbers.
        """
        for name, source_edges in self._edges.items():
            for chunk in _finite_chunks(np.asarray(batch[name])):
                self._counts[name] += _bin_counts(chunk, source_edges)

    def counts(self) -> dict[str, tuple[int, ...]]:
        """Return the counts of each source's bins."""
        return {name: tuple(int(count) for count in bins) for name, bins in self._counts.items()}


def count_histograms(
    batches: Iterable[Any], edges: Mapping[str, tuple[float, ...]]
) -> dict[str, tuple[int, ...]]:
    """Count each source's finite values of ``batches`` in the bins of ``edges`` (see ``HistogramCounter``).

    Raises:
        ValueError: if a batch is not a mapping.
        KeyError: if a batch lacks one of the sources.
    """
    counter = HistogramCounter(edges)
    for number, batch in enumerate(batches, start=1):
        if not isinstance(batch, Mapping):
            raise ValueError(f"batch {number} of the second pass is {describe_type(batch)}, not a mapping")
        counter.add(batch)
    return counter.counts()


def _bin_counts(chunk: np.ndarray[Any, Any], edges: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Count values in ``[edges[k], edges[k+1])``, the last bin closed, as ``np.histogram`` does.

    Counting the values below each edge is several times faster than ``np.histogram`` for 8 bins, and
    exact: comparisons with float64 edges need no rounding correction. Values outside the edges are left out.
    """
    values = chunk if chunk.dtype.kind == "f" else chunk.astype(np.float64)
    if values.size <= _SMALL_CHUNK:  # one searchsorted costs less than nine comparisons on few values
        slots = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        counts = slots[1:-1].copy()  # slot k holds edges[k-1] <= value < edges[k]
        counts[-1] += np.count_nonzero(values == edges[-1])  # the last bin includes its right edge
        return counts
    below = [np.count_nonzero(values < edge) for edge in edges[:-1]]
    below.append(np.count_nonzero(values <= edges[-1]))
    return np.diff(below)


def _finite_chunks(array: np.ndarray[Any, Any]) -> Iterator[np.ndarray[Any, Any]]:
    """Yield the finite values of ``array`` in flat chunks of at most ``CHUNK_VALUES`` values."""
    flat = array.reshape(-1)
    for start in range(0, flat.size, CHUNK_VALUES):
        chunk = flat[start : start + CHUNK_VALUES]
        yield chunk[np.isfinite(chunk)] if chunk.dtype.kind == "f" else chunk


def _merge_counts(total: Counter[Value], batch: Counter[Value] | None) -> Counter[Value] | None:
    if batch is None:
        return None
    total.update(batch)
    return total if len(total) <= MAX_DISTINCT_VALUES else None


def _count_values(array: np.ndarray[Any, Any]) -> Counter[Value] | None:
    """Count each value of one batch, ``None`` once there are more than ``MAX_DISTINCT_VALUES``."""
    flat = array.reshape(-1)
    if flat.dtype.kind == "b":
        trues = int(np.count_nonzero(flat))
        booleans: Counter[Value] = Counter({False: flat.size - trues, True: trues})
        return +booleans
    counts: Counter[Value] = Counter()
    for start in range(0, flat.size, CHUNK_VALUES):
        chunk = flat[start : start + CHUNK_VALUES]
        counts.update(_count_chunk(chunk))
        if len(counts) > MAX_DISTINCT_VALUES:
            return None
    return counts


def _count_chunk(chunk: np.ndarray[Any, Any]) -> dict[Value, int]:
    if chunk.size <= _SMALL_CHUNK:  # Python's Counter beats numpy's set-up on a few values
        return Counter(chunk.tolist())
    if chunk.dtype.kind in "iu" and chunk.size:
        low, high = int(chunk.min()), int(chunk.max())
        if high - low < _BINCOUNT_SPAN and high < _INTP_LIMIT:
            bins = np.bincount(chunk.astype(np.intp) - low, minlength=high - low + 1)
            present = np.flatnonzero(bins)
            return {low + int(offset): int(bins[offset]) for offset in present[: MAX_DISTINCT_VALUES + 1]}
    values, counts = np.unique(chunk, return_counts=True)
    return {value.item(): int(count) for value, count in zip(values, counts, strict=True)}
