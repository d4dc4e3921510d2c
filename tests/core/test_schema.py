"""Stream inspection: dtype, shape, range, raggedness and broken streams (also as stream_info() logs them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from emloop_ds import BaseDataset
from emloop_ds.core.errors import StreamError
from emloop_ds.core.schema import (
    SourceInfo,
    StreamInfo,
    describe_other_sources,
    describe_unequal_lengths,
    inspect_batch,
    inspect_dataset,
    inspect_stream,
    require_equal_lengths,
    stream_names,
)


def one_source(values: Any) -> SourceInfo:
    (source,) = inspect_batch({"s": values})
    return source


def test_numpy_source_reports_dtype_shape_and_range() -> None:
    images = np.linspace(0, 1, 16 * 3 * 8 * 8, dtype=np.float32).reshape(16, 3, 8, 8)
    assert one_source(images) == SourceInfo("s", "float32", (16, 3, 8, 8), 0.0, 1.0, ragged=False)


def test_float32_range_is_reported_in_its_shortest_form() -> None:
    source = one_source(np.array([0.1, 6.5], dtype=np.float32))
    assert (source.min, source.max) == (0.1, 6.5)


def test_list_of_ints_reports_integer_range() -> None:
    source = one_source([3, -2, 7])
    assert (source.dtype, source.shape, source.min, source.max) == ("int64", (3,), -2, 7)
    assert isinstance(source.min, int)


def test_booleans_report_a_boolean_range() -> None:
    source = one_source([True, True])
    assert (source.dtype, source.min, source.max) == ("bool", True, True)


def test_strings_have_no_range_and_are_not_ragged() -> None:
    source = one_source(["a", "longer"])
    assert (source.min, source.max, source.ragged) == (None, None, False)


def test_nan_is_ignored_in_the_range_and_all_nan_has_none() -> None:
    assert (one_source([np.nan, 1.0, 2.0]).min, one_source([np.nan, 1.0, 2.0]).max) == (1.0, 2.0)
    assert one_source([np.nan, np.nan]).min is None


def test_empty_source_has_no_range() -> None:
    source = one_source(np.zeros((0, 4)))
    assert (source.shape, source.min) == ((0, 4), None)


def test_lists_of_unequal_lengths_are_ragged() -> None:
    source = one_source([[1, 2], [3]])
    assert (source.ragged, source.dtype, source.shape) == (True, "list", (2,))


def test_object_array_of_unequal_arrays_is_ragged() -> None:
    values = np.empty(2, dtype=object)
    values[0], values[1] = np.zeros(2), np.zeros(3)
    assert one_source(values).ragged


def test_several_batches_widen_the_range_and_the_shape() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": np.zeros((2, 3)), "y": [1, 2]}
        yield {"x": np.ones((2, 4)), "y": [0, 9]}
        yield {"x": np.full((2, 3), 5.0), "y": [100, 100]}

    first_two = inspect_stream("s", stream, batches=2)
    x, y = first_two.sources
    assert (x.min, x.max, x.shape) == (0.0, 1.0, (2, None))
    assert (y.min, y.max, y.shape) == (0, 9, (2,))
    assert inspect_stream("s", stream, batches=1).sources[0].shape == (2, 3)


def test_batches_padded_each_to_their_own_length_are_not_ragged() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        for length in (5, 7, 6):
            yield {"x": np.zeros((4, length))}

    (x,) = inspect_stream("s", stream, batches=3).sources
    assert (x.shape, x.ragged) == ((4, None), False)


def test_examples_that_differ_within_a_later_batch_are_ragged() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": [[1, 2], [3, 4]]}
        yield {"x": [[1, 2], [3]]}

    assert inspect_stream("s", stream, batches=1).sources[0].ragged is False
    (x,) = inspect_stream("s", stream, batches=2).sources
    assert x.ragged is True


def test_a_dimension_that_differs_between_batches_is_none_and_the_batch_size_is_not_ragged() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": np.zeros((4, 3, 5))}
        yield {"x": np.zeros((4, 3, 5))}
        yield {"x": np.zeros((1, 3, 5))}

    assert inspect_stream("s", stream, batches=2).sources[0].shape == (4, 3, 5)
    (x,) = inspect_stream("s", stream, batches=3).sources
    assert (x.shape, x.ragged) == ((None, 3, 5), False)


def test_a_number_of_dimensions_that_differs_between_batches_makes_the_shape_unknown() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": np.zeros((2, 3))}
        yield {"x": np.zeros((2, 3, 1))}

    (x,) = inspect_stream("s", stream, batches=2).sources
    assert (x.shape, x.ragged) == (None, False)  # each batch is regular in itself


class PaddedPerBatch(BaseDataset):
    def _configure_dataset(self, output_dir: str | None, **kwargs: Any) -> None:
        pass

    def padded_stream(self) -> Iterator[dict[str, Any]]:
        for length in (5, 7, 6):
            yield {"x": np.zeros((4, length))}

    def ragged_stream(self) -> Iterator[dict[str, Any]]:
        yield {"x": [[1, 2], [3, 4]]}
        yield {"x": [[1, 2], [3]]}


def test_stream_info_warns_of_ragged_sources_only_where_a_batch_is_ragged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="emloop_ds"):
        PaddedPerBatch("dataset:\n  class: x.PaddedPerBatch\n").stream_info(batches=3)
    assert "  x: float64 [4, None]  range 0.0 - 0.0" in caplog.messages
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert warnings == ["stream `ragged` source `x` appears to be ragged"]


def test_nan_and_infinities_are_counted_and_left_out_of_the_range() -> None:
    source = one_source(np.array([np.nan, np.inf, -np.inf, -np.inf, 2.5, -1.0], dtype=np.float32))
    assert (source.nan, source.posinf, source.neginf, source.non_finite) == (1, 1, 2, 4)
    assert (source.min, source.max) == (-1.0, 2.5)


def test_a_source_of_only_infinities_has_no_range_but_its_counts() -> None:
    source = one_source([np.inf, -np.inf, np.nan])
    assert (source.min, source.max, source.nan, source.posinf, source.neginf) == (None, None, 1, 1, 1)


def test_finite_and_integer_sources_count_no_non_finite_values() -> None:
    assert one_source([1.0, 2.0]).non_finite == 0
    assert one_source([1, 2]).non_finite == 0


def test_non_finite_counts_add_up_over_batches() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": [np.nan, 1.0]}
        yield {"x": [np.nan, -np.inf]}
        yield {"x": [np.inf, 7.0]}

    (x,) = inspect_stream("s", stream, batches=3).sources
    assert (x.nan, x.posinf, x.neginf, x.min, x.max) == (2, 1, 1, 1.0, 7.0)


def test_sources_of_unequal_length_make_the_stream_broken_naming_them() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": [1, 2, 3], "y": [1, 2, 3], "z": "abc"}
        yield {"x": np.zeros((4, 2)), "y": [1, 2, 3], "z": "abcd"}

    info = inspect_stream("s", stream, batches=2)
    assert info.error is not None
    assert info.error.startswith("batch 2 has sources of unequal length (`x` 4, `y` 3, `z` 4)")
    assert [(source.name, source.shape) for source in info.sources] == [("x", (3,)), ("y", (3,)), ("z", ())]
    assert inspect_stream("s", stream, batches=1).error is None


def test_a_batch_with_other_sources_than_the_first_breaks_the_stream_naming_them() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": [1.0], "y": [2]}
        yield {"y": [3], "x": [4.0]}  # the same sources in another order are the same schema
        yield {"z": [5], "y": [6]}

    assert inspect_stream("s", stream, batches=2).error is None
    info = inspect_stream("s", stream, batches=3)
    assert info.error == (
        "batch 3 has other sources than batch 1 (missing `x`; extra `z`); "
        "make every batch of a stream hold the same sources"
    )
    x, y = info.sources  # what batches 1 and 2 showed
    assert (x.name, x.min, x.max, y.name, y.min, y.max) == ("x", 1.0, 4.0, "y", 2, 3)


def test_describe_other_sources_lists_the_missing_and_the_extra_ones() -> None:
    assert describe_other_sources(["b", "a"], ["a", "b"]) is None
    assert describe_other_sources(["a"], ["a", "b"]) == "missing `b`"
    assert describe_other_sources(["a", "c", "d"], ["a"]) == "extra `c`, `d`"


def test_sources_without_a_length_are_not_compared() -> None:
    assert describe_unequal_lengths({"x": [1, 2], "weight": 0.5, "step": np.int64(3)}) is None
    assert describe_unequal_lengths({}) is None


def test_require_equal_lengths_raises_a_stream_error_naming_stream_batch_and_sources() -> None:
    require_equal_lengths({"x": [1], "y": [2]}, "train", 1)
    with pytest.raises(
        StreamError, match=r"stream `train` batch 7 has sources of unequal length \(`x` 1, `y` 2\)"
    ):
        require_equal_lengths({"x": [1], "y": [2, 3]}, "train", 7)


def test_a_stream_that_raises_at_its_first_batch_is_reported_naming_it() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        raise OSError("no such file: data.bin\nsecond line")
        yield {}

    assert inspect_stream("s", stream) == StreamInfo(
        "s", (), "batch 1 raised OSError: no such file: data.bin"
    )


def test_a_stream_that_fails_later_keeps_what_the_batches_before_showed() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": [1, 2]}
        yield {"x": [0, 9]}
        raise OSError("part-3.bin is missing")

    info = inspect_stream("s", stream, batches=5)
    assert info.error == "batch 3 raised OSError: part-3.bin is missing"
    ((name, low, high),) = [(source.name, source.min, source.max) for source in info.sources]
    assert (name, low, high) == ("x", 0, 9)


class Unreadable:
    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot decode frame 7")


def test_a_batch_that_cannot_be_inspected_is_left_out_of_the_findings_entirely() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": [1], "y": [1]}
        yield {"x": [5], "y": Unreadable()}

    info = inspect_stream("s", stream, batches=2)
    assert info.error == "batch 2 could not be inspected: RuntimeError: cannot decode frame 7"
    x, _ = info.sources
    assert (x.min, x.max) == (1, 1)  # not 1 - 5: batch 2 was not read in full


def test_a_stream_method_that_raises_or_returns_no_iterable_is_reported() -> None:
    def fails() -> Any:
        raise ValueError("bad split")

    assert inspect_stream("s", fails).error == "ValueError: bad split"
    assert inspect_stream("s", lambda: None).error == (
        "the stream method returned a NoneType, not an iterable of batches"
    )


def test_empty_stream_is_reported_as_broken() -> None:
    assert inspect_stream("s", list).error == "the stream yielded no batches"


def test_batch_that_is_not_a_mapping_is_reported() -> None:
    assert inspect_stream("s", lambda: [{"x": [1]}, [1, 2]], batches=2).error == (
        "batch 2 is a list, not a mapping of source names to examples"
    )


class Data:
    stream_count = 0

    def train_stream(self) -> list[dict[str, list[int]]]:
        return [{"x": [1]}]

    def valid_stream(self) -> list[dict[str, list[int]]]:
        raise ValueError("bad split")

    def _hidden_stream(self) -> list[dict[str, list[int]]]:
        return []

    @property
    def lazy_stream(self) -> Any:
        pytest.fail("properties must not be evaluated while listing streams")

    def stream_info(self) -> None:
        pass


def test_stream_names_lists_public_stream_methods_only() -> None:
    assert stream_names(Data()) == ["train", "valid"]


def test_inspect_dataset_reports_every_stream_even_after_a_broken_one() -> None:
    info = inspect_dataset(Data())
    assert info.dataset == f"{__name__}.Data"
    assert [(s.name, s.error) for s in info.streams] == [("train", None), ("valid", "ValueError: bad split")]


def test_broken_streams_lists_the_streams_with_an_error() -> None:
    info = inspect_dataset(Data())
    assert [stream.name for stream in info.broken_streams] == ["valid"]
