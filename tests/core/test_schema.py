"""Stream inspection: dtype, shape, range, raggedness and broken streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from emloop_ds.core.schema import (
    SourceInfo,
    StreamInfo,
    inspect_batch,
    inspect_dataset,
    inspect_stream,
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
    assert (x.min, x.max, x.ragged, x.shape) == (0.0, 1.0, True, (2, 3))
    assert (y.min, y.max, y.ragged) == (0, 9, False)
    assert inspect_stream("s", stream, batches=1).sources[0].ragged is False


def test_stream_that_raises_is_reported_with_its_error() -> None:
    def stream() -> Iterator[dict[str, Any]]:
        raise OSError("no such file: data.bin\nsecond line")
        yield {}

    assert inspect_stream("s", stream) == StreamInfo("s", (), "OSError: no such file: data.bin")


def test_empty_stream_is_reported_as_broken() -> None:
    assert inspect_stream("s", list).error == "the stream yielded no batches"


def test_batch_that_is_not_a_mapping_is_reported() -> None:
    assert inspect_stream("s", lambda: [[1, 2]]).error == (
        "a batch is a list, not a mapping of source names to examples"
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
