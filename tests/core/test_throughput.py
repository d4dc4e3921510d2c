"""Test measure_stream and find_stream: totals, rates, waits and the errors of broken streams."""

from __future__ import annotations

import itertools
import math
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from emloop_ds import ConfigError, StreamError, StreamProducerError
from emloop_ds.core import throughput
from emloop_ds.core.throughput import ThroughputReport, WaitSketch, find_stream, measure_stream
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


def test_measure_stream_rates_and_waits_come_from_the_clock() -> None:
    clock = fake_clock()
    report = measure_stream(lambda: image_batches(4), "train", clock=clock.__next__)
    # readings: start, before and after each of 4 batches, before the epoch end, end
    assert report.seconds == 5.0
    assert report.first_batch_seconds == 1.0
    assert report.batches_per_second == 4 / 5.0
    assert report.examples_per_second == 16 / 5.0
    assert report.megabytes_per_second == 4 * 160 / 1e6 / 5.0
    assert report.wait_median_seconds == pytest.approx(0.5, rel=0.01)
    assert report.wait_p95_seconds == pytest.approx(0.5, rel=0.01)
    assert report.wait_max_seconds == 0.5
    assert report.interrupted is False


def test_waits_are_ordered_median_p95_max() -> None:
    report = measure_stream(lambda: image_batches(20), "train", buffer_size=4)
    assert report.wait_median_seconds is not None
    assert report.wait_p95_seconds is not None
    assert report.wait_max_seconds is not None
    assert 0 <= report.wait_median_seconds <= report.wait_p95_seconds <= report.wait_max_seconds


def test_the_stream_is_read_without_the_wrapper_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    profiles: list[object] = []
    original = throughput.StreamWrapper

    def recording_wrapper(*args: Any, **kwargs: Any) -> Any:
        profiles.append(kwargs.get("profile"))
        return original(*args, **kwargs)

    monkeypatch.setattr(throughput, "StreamWrapper", recording_wrapper)
    report = measure_stream(lambda: image_batches(3), "train")
    assert report.batches == 3
    assert profiles == [None]


# --- the wait sketch: bounded and accurate ----------------------------------------------------------


def test_the_wait_sketch_stays_small_over_100k_waits_and_is_within_1_percent() -> None:
    rng = np.random.default_rng(7)
    waits = np.concatenate([rng.lognormal(-9, 2, 100_000), np.zeros(50)])  # ~0.1 ms, spread 1e-7..1e-1 s
    sketch = WaitSketch()
    sizes = []
    for n, wait in enumerate(waits.tolist()):
        sketch.add(wait)
        if n % 1_000 == 0:
            sizes.append(sketch.stored_numbers)
    exact = np.sort(waits)
    assert sketch.count == len(waits)
    assert sketch.max_seconds == exact[-1]
    for fraction in (0.01, 0.5, 0.95, 0.999):
        nearest_rank = exact[math.ceil(fraction * len(exact)) - 1]
        assert sketch.quantile(fraction) == pytest.approx(nearest_rank, rel=0.01)
    # the size follows the spread of the waits, not their number: ~1,000 buckets for 8 decades (only
    # rare extremes open new ones), plus at most PENDING_LIMIT durations waiting to be bucketed
    assert max(sizes) < 2 * 1_100 + WaitSketch.PENDING_LIMIT
    assert max(sizes[len(sizes) // 2 :]) - max(sizes[: len(sizes) // 2]) < 300  # a list: +50,000


def test_the_wait_sketch_of_nothing_and_of_zeros() -> None:
    assert WaitSketch().quantile(0.5) is None
    assert WaitSketch().max_seconds is None
    sketch = WaitSketch()
    for _ in range(3):
        sketch.add(0.0)
    sketch.add(2.0)
    assert sketch.count == 4
    assert (sketch.quantile(0.5), sketch.max_seconds) == (0.0, 2.0)
    assert sketch.quantile(1.0) == pytest.approx(2.0, rel=0.01)
    sketch.add(1.0)  # adding goes on after a quantile was asked for
    assert sketch.count == 5
    assert sketch.quantile(0.8) == pytest.approx(1.0, rel=0.01)


# --- long runs: Ctrl-C and endless streams ----------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("buffer_size", [0, 3])
def test_ctrl_c_ends_the_read_with_a_report_of_what_was_read(buffer_size: int) -> None:
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def endless() -> Iterator[Batch]:
        n = 0
        while True:
            if n == 5:
                signal.pthread_kill(main_thread, signal.SIGINT)
            yield {"x": [n, n]}
            n += 1

    report = measure_stream(endless, "train", buffer_size=buffer_size)
    assert report.interrupted is True
    assert report.batches >= 5 - buffer_size
    assert report.examples == 2 * report.batches
    assert [thread for thread in threading.enumerate() if "producer" in thread.name] == []


def endless_batches() -> Iterator[Batch]:
    return itertools.repeat({"x": [0]})


def test_a_long_first_epoch_without_an_epoch_size_gets_one_hint() -> None:
    read: list[None] = []
    hints: list[int] = []
    report = measure_stream(
        lambda: itertools.islice(endless_batches(), 30),
        "train",
        clock=fake_clock(1.0).__next__,
        on_batch=lambda: read.append(None),
        on_endless_hint=lambda: hints.append(len(read)),
        endless_hint_after_s=10.0,
    )
    assert report.batches == 30
    # readings are 1 s apart, two per batch: the 5th batch arrives 10 s after the start
    assert hints == [5]


@pytest.mark.parametrize(("epoch_size", "pass_length", "total"), [(None, 4, 12), (5, 30, 15)])
def test_no_hint_when_the_first_epoch_ends_in_time_or_is_bounded(
    epoch_size: int | None, pass_length: int, total: int
) -> None:
    hints: list[None] = []
    report = measure_stream(
        lambda: itertools.islice(endless_batches(), pass_length),
        "train",
        epochs=3,
        epoch_size=epoch_size,
        clock=fake_clock(1.0).__next__,
        on_endless_hint=lambda: hints.append(None),
        endless_hint_after_s=10.0,
    )
    assert report.batches == total
    assert hints == []


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
