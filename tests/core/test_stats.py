"""Statistics of `info --stats`: merged moments, two-pass histograms, value counts, bounded memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from emloop_ds.core import stats as stats_module
from emloop_ds.core.schema import SourceInfo, inspect_stream
from emloop_ds.core.stats import Histogram, Moments, StatsTally, count_histograms


def by_name(sources: tuple[SourceInfo, ...]) -> dict[str, SourceInfo]:
    return {source.name: source for source in sources}


def test_merged_moments_equal_numpy_over_all_values() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(1e6, 3.0, size) for size in (1, 7, 1000, 0, 33)]
    merged = Moments()
    for part in parts:
        merged = merged.merge(Moments.of(part))
    everything = np.concatenate(parts)
    assert merged.count == everything.size
    assert merged.mean == pytest.approx(everything.mean(), rel=1e-14)
    assert merged.std == pytest.approx(everything.std(), rel=1e-9)
    assert Moments().std is None


def test_stats_over_batches_equal_numpy_over_the_concatenated_finite_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stats_module, "CHUNK_VALUES", 5)  # several chunks per batch
    rng = np.random.default_rng(7)
    batches = [rng.normal(2.0, 4.0, (6, 3)).astype(np.float32) for _ in range(4)]
    batches[1][0, 0], batches[2][3, 1], batches[3][5, 2] = np.nan, np.inf, -np.inf

    (x,) = inspect_stream("s", lambda: ({"x": batch} for batch in batches), batches=4, stats=True).sources
    values = np.concatenate([batch.ravel() for batch in batches]).astype(np.float64)
    finite = values[np.isfinite(values)]
    assert x.stats is not None
    assert (x.nan, x.posinf, x.neginf, x.stats.count) == (1, 1, 1, finite.size)
    assert x.stats.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert x.stats.std == pytest.approx(finite.std(), rel=1e-12)
    counts, edges = np.histogram(finite, bins=8)
    assert x.stats.histogram == Histogram(tuple(edges.tolist()), tuple(counts.tolist()))
    assert x.stats.values is None


def test_the_stream_is_read_twice_for_the_histogram() -> None:
    calls = []

    def stream() -> Iterator[dict[str, Any]]:
        calls.append(1)
        yield from ({"x": [n, n + 1]} for n in range(10))

    inspect_stream("s", stream, batches=3, stats=True)
    assert len(calls) == 2
    inspect_stream("s", stream, batches=3)
    assert len(calls) == 3


def test_integers_get_moments_histogram_and_value_counts() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"label": [0, 2, 2, 1]}
        yield {"label": np.array([2, 2], dtype=np.int8)}

    (label,) = inspect_stream("s", stream, batches=2, stats=True).sources
    assert label.stats is not None
    assert label.stats.values == {0: 1, 1: 1, 2: 4}
    assert list(label.stats.values) == [0, 1, 2]
    assert label.stats.mean == pytest.approx(1.5)
    assert label.stats.histogram is not None
    assert label.stats.histogram.counts == (1, 0, 0, 0, 1, 0, 0, 4)
    assert label.stats.histogram.edges[0] == 0.0
    assert label.stats.histogram.edges[-1] == 2.0


def test_booleans_and_strings_get_value_counts_only() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"flag": [True, False, True], "word": ["cat", "dog", "cat"]}

    sources = by_name(inspect_stream("s", stream, stats=True).sources)
    flag, word = sources["flag"].stats, sources["word"].stats
    assert flag is not None
    assert word is not None
    assert (flag.mean, flag.std, flag.histogram, flag.values) == (None, None, None, {False: 1, True: 2})
    assert (word.mean, word.histogram, word.values) == (None, None, {"cat": 2, "dog": 1})


def test_more_than_20_distinct_values_are_not_counted() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"few": list(range(20)), "many": list(range(20))}
        yield {"few": list(range(20)), "many": [20] * 20}

    sources = by_name(inspect_stream("s", stream, batches=2, stats=True).sources)
    assert sources["few"].stats is not None
    assert sources["few"].stats.values == {n: 2 for n in range(20)}
    assert sources["many"].stats is not None
    assert sources["many"].stats.values is None
    assert sources["many"].stats.mean is not None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([-128, 127, 127], dtype=np.int8), {-128: 1, 127: 2}),
        (np.array([2**64 - 1, 0, 2**64 - 1], dtype=np.uint64), {0: 1, 2**64 - 1: 2}),
        (np.array([-(10**12), 10**12]), {-(10**12): 1, 10**12: 1}),
    ],
)
@pytest.mark.parametrize("small_chunk", [0, 2048], ids=["numpy", "counter"])
def test_integer_values_are_counted_exactly_at_the_limits_of_their_type(
    monkeypatch: pytest.MonkeyPatch, values: np.ndarray[Any, Any], expected: dict[int, int], small_chunk: int
) -> None:
    monkeypatch.setattr(stats_module, "_SMALL_CHUNK", small_chunk)
    tally = StatsTally()
    tally.add(values)
    assert tally.values == expected


def test_a_source_that_changes_kind_between_batches_is_not_counted() -> None:
    tally = StatsTally()
    tally.add(np.array([True, True]))
    tally.add(np.array([1, 0]))
    assert tally.values is None  # True == 1 must not merge into one count


def test_nan_only_and_ragged_and_object_sources_get_empty_stats() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"nan": [np.nan, np.nan], "ragged": [[1], [1, 2]], "objects": [object(), None]}

    for source in inspect_stream("s", stream, stats=True).sources:
        assert source.stats is not None
        assert (source.stats.mean, source.stats.std, source.stats.histogram, source.stats.values) == (
            None,
            None,
            None,
            None,
        ), source.name


def test_a_constant_source_gets_one_full_bin_around_its_value() -> None:
    (x,) = inspect_stream("s", lambda: [{"x": [3.0, 3.0]}], stats=True).sources
    assert x.stats is not None
    assert x.stats.std == 0.0
    assert x.stats.histogram is not None
    assert (x.stats.histogram.edges[0], x.stats.histogram.edges[-1]) == (2.5, 3.5)
    assert sum(x.stats.histogram.counts) == 2


def test_a_range_too_wide_for_float64_gets_no_histogram_and_no_std() -> None:
    (x,) = inspect_stream("s", lambda: [{"x": [-1e308, 1e308]}], stats=True).sources
    assert x.stats is not None
    assert (x.stats.mean, x.stats.std, x.stats.histogram) == (0.0, None, None)  # the std overflows float64


def test_a_mean_that_overflows_is_none() -> None:
    (x,) = inspect_stream("s", lambda: [{"x": [1e308, 1.5e308]}], stats=True).sources
    assert x.stats is not None
    assert x.stats.mean is None
    assert x.stats.histogram is not None  # the range itself is finite


def test_a_second_pass_that_fails_keeps_the_first_pass_and_names_the_batch() -> None:
    calls = []

    def stream() -> Iterator[dict[str, Any]]:
        calls.append(1)
        yield {"x": [1.0, 2.0]}
        if len(calls) == 2:
            raise OSError("file vanished")
        yield {"x": [3.0, 4.0]}

    info = inspect_stream("s", stream, batches=2, stats=True)
    assert info.error == "the second pass for statistics failed: batch 2 raised OSError: file vanished"
    (x,) = info.sources
    assert (x.min, x.max, x.shape, x.stats) == (1.0, 4.0, (2,), None)


def test_a_second_pass_with_other_sources_breaks_the_stream_naming_them() -> None:
    passes = iter([{"x": [1.0]}, {"y": [1.0]}])
    info = inspect_stream("s", lambda: [next(passes)], stats=True)
    assert info.error == (
        "the second pass for statistics failed: batch 1 has other sources than the first pass "
        "(missing `x`; extra `y`); make every batch of a stream hold the same sources"
    )
    assert [source.name for source in info.sources] == ["x"]


def test_a_second_pass_with_a_source_that_became_ragged_breaks_the_stream_naming_the_batch() -> None:
    passes = iter([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0]]])
    info = inspect_stream("s", lambda: [{"x": next(passes)}], stats=True)
    assert info.error is not None
    assert info.error.startswith("the second pass for statistics failed: batch 1 could not be inspected: ")
    ((name, shape),) = [(source.name, source.shape) for source in info.sources]
    assert (name, shape) == ("x", (2, 2))


def test_a_second_pass_with_other_data_shows_in_the_histogram_count() -> None:
    passes = iter([[0.0, 1.0, 2.0], [1.0, 2.0, 9.0]])
    (x,) = inspect_stream("s", lambda: [{"x": next(passes)}], stats=True).sources
    assert x.stats is not None
    assert x.stats.histogram is not None
    assert (x.stats.count, sum(x.stats.histogram.counts)) == (3, 2)  # 9.0 is beyond pass one's range


@pytest.mark.parametrize("small_chunk", [0, 2048], ids=["comparisons", "searchsorted"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_bins_match_numpy_histogram_including_the_closed_last_edge_and_values_outside(
    monkeypatch: pytest.MonkeyPatch, small_chunk: int, dtype: type[np.generic]
) -> None:
    monkeypatch.setattr(stats_module, "_SMALL_CHUNK", small_chunk)
    values = (np.random.default_rng(5).normal(0, 40, 1000)).astype(dtype)
    edges = np.histogram_bin_edges(values[:100], bins=8)  # some values fall outside
    values = np.concatenate([values, np.array([edges[0], edges[-1], edges[3]], dtype=dtype)])
    (counts,) = count_histograms([{"x": values}], {"x": tuple(edges.tolist())}).values()
    assert counts == tuple(np.histogram(values, bins=edges)[0].tolist())
    assert sum(counts) < values.size


def test_count_histograms_rejects_a_batch_that_is_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="batch 1 of the second pass is a list"):
        count_histograms([[1.0]], {"x": tuple(float(n) for n in range(9))})


def peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_tally_works_in_chunks_so_its_memory_does_not_grow_with_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stats_module, "CHUNK_VALUES", 1 << 14)
    batch = np.random.default_rng(1).normal(size=1 << 22).astype(np.float32)  # 16 MiB
    labels = (batch > 0).astype(np.int16)
    tally, label_tally = StatsTally(), StatsTally()
    peak = peak_bytes(lambda: (tally.add(batch), label_tally.add(labels)))
    assert peak < 2 << 20  # temporaries of one 16 Ki-value chunk, not of the 4 Mi-value batch
    assert tally.moments.count == batch.size
    assert label_tally.values is not None
    assert sum(label_tally.values.values()) == batch.size


def test_inspecting_many_batches_holds_one_batch_at_a_time() -> None:
    batch_bytes = 4 << 20

    def stream() -> Iterator[dict[str, Any]]:
        for n in range(40):
            yield {"x": np.full(batch_bytes // 8, float(n)), "y": np.full(batch_bytes // 8, n)}

    peak = peak_bytes(lambda: inspect_stream("s", stream, batches=40, stats=True))
    assert peak < 6 * batch_bytes  # 40 batches of 2 sources would be 80 times one source
