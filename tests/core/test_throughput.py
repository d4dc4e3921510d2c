"""Test measure_stream and find_stream: totals, rates, waits and the errors of broken streams."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from emloop_ds import ConfigError, StreamError, StreamProducerError
from emloop_ds.core.throughput import ThroughputReport, find_stream, measure_stream
from emloop_ds.core.types import Batch


def image_batches(count: int = 3, size: int = 4) -> Iterator[Batch]:
    for _ in range(count):
        yield {"images": np.zeros((size, 2, 5), dtype=np.float32), "labels": [0] * size}


def fake_clock(step_s: float = 0.5) -> itertools.count[float]:
    """Return a clock that advances ``step_s`` on every reading."""
    return itertools.count(0.0, step_s)


def test_measure_stream_totals_batches_examples_and_array_bytes() -> None:
    report = measure_stream(image_batches, "train", epochs=2)
    assert (report.batches, report.examples) == (6, 24)
    assert report.nbytes == 6 * 4 * 2 * 5 * 4
    assert (report.epochs, report.epoch_size, report.buffer_size, report.eager) == (2, None, 0, False)


def test_measure_stream_rates_come_from_the_clock() -> None:
    clock = fake_clock()
    report = measure_stream(lambda: image_batches(4), "train", clock=clock.__next__)
    # readings: start, one per batch (4), end
    assert report.seconds == 2.5
    assert report.first_batch_seconds == 0.5
    assert report.batches_per_second == 4 / 2.5
    assert report.examples_per_second == 16 / 2.5
    assert report.megabytes_per_second == 4 * 160 / 1e6 / 2.5


def test_waits_are_the_median_p95_and_max_of_the_profile() -> None:
    report = measure_stream(lambda: image_batches(20), "train", buffer_size=4)
    assert report.wait_median_seconds is not None
    assert report.wait_p95_seconds is not None
    assert report.wait_max_seconds is not None
    assert 0 <= report.wait_median_seconds <= report.wait_p95_seconds <= report.wait_max_seconds


def test_an_empty_stream_has_no_rates_of_things_it_never_saw() -> None:
    report = measure_stream(list, "train", clock=fake_clock().__next__)
    assert (report.batches, report.examples, report.nbytes) == (0, 0, None)
    assert report.first_batch_seconds is None
    assert report.wait_median_seconds is report.wait_max_seconds is None
    assert report.megabytes_per_second is None
    assert report.batches_per_second == 0


def test_zero_seconds_gives_no_rates() -> None:
    report = measure_stream(lambda: image_batches(1), "train", clock=lambda: 1.0)
    assert report.batches_per_second is report.examples_per_second is report.megabytes_per_second is None


@pytest.mark.parametrize(("buffer_size", "eager"), [(0, False), (3, False), (3, True)])
def test_fixed_epochs_are_read_in_every_mode(buffer_size: int, eager: bool) -> None:
    report = measure_stream(image_batches, "train", 3, 5, buffer_size, eager)
    assert isinstance(report, ThroughputReport)
    assert (report.batches, report.examples) == (15, 60)


def test_on_batch_is_called_once_per_batch() -> None:
    calls: list[None] = []
    measure_stream(image_batches, "train", epochs=2, on_batch=lambda: calls.append(None))
    assert len(calls) == 6


def test_a_failing_stream_is_a_stream_error_with_the_dataset_message() -> None:
    def failing() -> Iterator[Batch]:
        yield {"x": [1]}
        raise ValueError("record 1 is corrupt")

    with pytest.raises(
        StreamError, match="stream `train` failed after 1 batches: ValueError: record 1"
    ) as caught:
        measure_stream(failing, "train")
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_failing_buffered_stream_keeps_the_producer_error() -> None:
    def failing() -> Iterator[Batch]:
        raise ValueError("record 0 is corrupt")
        yield {}

    with pytest.raises(StreamProducerError, match="record 0 is corrupt"):
        measure_stream(failing, "train", buffer_size=2)


def test_a_batch_that_is_not_a_mapping_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="stream `train` yielded a list as batch 1, not a mapping"):
        measure_stream(lambda: [[1, 2]], "train")


@pytest.mark.parametrize("buffer_size", [0, 2])
def test_a_batch_of_sources_of_unequal_length_is_a_stream_error(buffer_size: int) -> None:
    batches = [{"x": [1, 2], "y": [3, 4]}, {"x": np.zeros((3, 2)), "y": [1, 2]}]
    with pytest.raises(
        StreamError, match=r"stream `train` batch 2 has sources of unequal length \(`x` 3, `y` 2\)"
    ):
        measure_stream(lambda: batches, "train", buffer_size=buffer_size)


class TwoStreams:
    def train_stream(self) -> list[Batch]:
        return []

    def valid_stream(self) -> list[Batch]:
        return []


def test_find_stream_returns_the_stream_method() -> None:
    dataset = TwoStreams()
    assert find_stream(dataset, "valid") == dataset.valid_stream


def test_find_stream_names_the_available_streams() -> None:
    with pytest.raises(ConfigError, match="TwoStreams has no stream `test`; available: train, valid"):
        find_stream(TwoStreams(), "test")
