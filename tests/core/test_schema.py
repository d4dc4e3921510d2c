"""Stream inspection: dtype, shape, range, raggedness and broken streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from emloop_ds.core.errors import StreamError
from emloop_ds.core.schema import (
    SourceInfo,
    StreamInfo,
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


def test_several_batches_widen_the_range_and_detect_shape_changes() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": np.zeros((2, 3)), "y": [1, 2]}
        yield {"x": np.ones((2, 4)), "y": [0, 9]}
        yield {"x": np.full((2, 3), 5.0), "y": [100, 100]}

    first_two = inspect_stream("s", stream, batches=2)
    x, y = first_two.sources
    assert (x.min, x.max, x.ragged, x.shape) == (0.0, 1.0, True, (2, None))
    assert (y.min, y.max, y.ragged, y.shape) == (0, 9, False, (2,))
    assert inspect_stream("s", stream, batches=1).sources[0].ragged is False


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
    assert (x.shape, x.ragged) == (None, True)


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
        yield {"x": [1, 2, 3], "y": [1, 2, 3]}
        yield {"x": np.zeros((4, 2)), "y": [1, 2, 3], "z": "abcd"}

    info = inspect_stream("s", stream, batches=2)
    assert info.sources == ()
    assert info.error is not None
    assert info.error.startswith("batch 2 has sources of unequal length (`x` 4, `y` 3, `z` 4)")
    assert inspect_stream("s", stream, batches=1).error is None


def test_sources_without_a_length_are_not_compared() -> None:
    assert describe_unequal_lengths({"x": [1, 2], "weight": 0.5, "step": np.int64(3)}) is None
    assert describe_unequal_lengths({}) is None


def test_require_equal_lengths_raises_a_stream_error_naming_stream_batch_and_sources() -> None:
    require_equal_lengths({"x": [1], "y": [2]}, "train", 1)
    with pytest.raises(
        StreamError, match=r"stream `train` batch 7 has sources of unequal length \(`x` 1, `y` 2\)"
    ):
        require_equal_lengths({"x": [1], "y": [2, 3]}, "train", 7)


def test_stream_that_raises_is_reported_with_its_error() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        raise OSError("no such file: data.bin\nsecond line")
        yield {}

    assert inspect_stream("s", stream) == StreamInfo("s", (), "OSError: no such file: data.bin")


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
