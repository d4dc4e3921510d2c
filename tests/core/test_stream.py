"""Test StreamWrapper: epochs, fixed-size epochs, buffering, the gate, errors, shutdown and profiling."""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

import emloop_ds
from emloop_ds import StreamError, StreamNotEnteredError, StreamProducerError, StreamWrapper
from emloop_ds.core.types import Batch

WAIT_S = 5.0
"""Safety timeout for waits that normally end at once."""

# buffered variants: (buffer_size, eager)
BUFFERED = [(1, False), (3, False), (1, True), (3, True)]
ALL_MODES = [(0, False), *BUFFERED]


class CountingStream:
    """A stream function: each pass yields ``{"i": [n]}`` for n below ``length``, counting what it made."""

    def __init__(self, length: int, fail_at: int | None = None) -> None:
        self.length = length
        self.fail_at = fail_at
        self.calls = 0
        self.yielded = 0
        self._changed = threading.Condition()

    def __call__(self) -> Iterator[Batch]:
        self.calls += 1
        return self._generate()

    def _generate(self) -> Iterator[Batch]:
        for n in range(self.length):
            if n == self.fail_at:
                raise ValueError(f"cannot read record {n}")
            with self._changed:
                self.yielded += 1
                self._changed.notify_all()
            yield {"i": [n]}

    def wait_yielded(self, count: int, timeout_s: float = WAIT_S) -> bool:
        """Wait until ``count`` batches were made in all; return whether they were."""
        with self._changed:
            return self._changed.wait_for(lambda: self.yielded >= count, timeout_s)


def numbers(batches: list[Batch]) -> list[int]:
    return [batch["i"][0] for batch in batches]


def read_epochs(stream: StreamWrapper, epochs: int) -> list[list[int]]:
    return [numbers(list(stream)) for _ in range(epochs)]


def producer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("emloop-ds producer")]


@pytest.fixture(autouse=True)
def _no_producer_left() -> Iterator[None]:
    yield
    assert producer_threads() == []


# --- construction ---------------------------------------------------------------------------------


class TrainDataset:
    def train_stream(self) -> Iterator[Batch]:
        yield from ({"i": [n]} for n in range(3))


def test_seed_unbuffered_example_runs_as_written() -> None:
    dataset = TrainDataset()
    stream = StreamWrapper(dataset.train_stream, "train")
    assert stream.name == "train"
    assert [numbers(list(stream)), numbers(list(stream))] == [[0, 1, 2], [0, 1, 2]]


def test_seed_buffered_example_runs_as_written() -> None:
    dataset = TrainDataset()
    stream = StreamWrapper(dataset.train_stream, "train", buffer=16, epoch_size=1000)
    with stream:
        batches = numbers(list(stream))
    assert stream.name == "train"
    assert batches == [0, 1, 2] * 333 + [0]


def test_positional_arguments_follow_the_documented_signature() -> None:
    profile: dict[str, list[float]] = {}
    stream = StreamWrapper(CountingStream(5), 2, 3, "valid", profile)
    with stream:
        assert read_epochs(stream, 2) == [[0, 1, 2], [3, 4, 0]]
    assert stream.name == "valid"
    assert len(profile["read_batch_valid"]) == 6


def test_keyword_arguments_and_the_buffer_spelling_agree() -> None:
    stream = StreamWrapper(CountingStream(4), buffer_size=2, epoch_size=3, name="a")
    other = StreamWrapper(CountingStream(4), buffer=2, epoch_size=3, name="a")
    with stream, other:
        assert read_epochs(stream, 2) == read_epochs(other, 2) == [[0, 1, 2], [3, 0, 1]]


@pytest.mark.parametrize(
    ("args", "kwargs", "phrase"),
    [
        ((), {"buffer": 2, "buffer_size": 2}, "two spellings"),
        ((), {"bufer": 2}, "unexpected keyword argument 'bufer'"),
        (("train", 16), {}, "by keyword"),
        (("train",), {"name": "valid"}, "multiple values for argument 'name'"),
        ((2,), {"buffer": 2}, "two spellings"),
        ((1, 2, "x", {}, 5), {}, "at most 5 positional arguments"),
        (("1",), {"buffer_size": "16"}, "buffer_size must be an int, not str"),
        ((True,), {}, "buffer_size must be an int, not bool"),
        ((2, "1000"), {}, "epoch_size must be an int, not str"),
        ((), {"name": 3}, "name must be a str or None, not int"),
        ((), {"profile": []}, "profile must be a dict or None, not list"),
        ((), {"buffer": 2, "eager": "yes"}, "eager must be a bool"),
        ((), {"eager": True}, "eager=True needs a buffer"),
    ],
)
def test_malformed_arguments_are_a_clear_type_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], phrase: str
) -> None:
    with pytest.raises(TypeError, match=phrase):
        StreamWrapper(CountingStream(1), *args, **kwargs)


def test_a_stream_instead_of_a_stream_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="function returning an iterable of batches.*not a generator"):
        StreamWrapper(TrainDataset().train_stream(), "train")  # type: ignore[call-overload]


def test_stream_wrapper_is_exported() -> None:
    assert emloop_ds.StreamWrapper is StreamWrapper
    assert "StreamWrapper" in emloop_ds.__all__
    assert emloop_ds.__all__ == sorted(emloop_ds.__all__)


# --- epochs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("buffer_size", "eager"), ALL_MODES)
def test_each_epoch_is_one_pass_from_a_fresh_iterator(buffer_size: int, eager: bool) -> None:
    source = CountingStream(4)
    stream = StreamWrapper(source, "train", buffer_size=buffer_size, eager=eager)
    with stream:
        assert read_epochs(stream, 3) == [[0, 1, 2, 3]] * 3
    assert source.calls >= 3


def test_a_list_returning_stream_function_works() -> None:
    stream = StreamWrapper(lambda: [{"i": [0]}, {"i": [1]}], "train")
    assert read_epochs(stream, 2) == [[0, 1], [0, 1]]


@pytest.mark.parametrize(("buffer_size", "eager"), ALL_MODES)
@pytest.mark.parametrize(("length", "epoch_size"), [(5, 3), (2, 5), (3, 3), (1, 1)])
def test_fixed_size_epochs_continue_across_restarts_without_skipping_or_repeating(
    buffer_size: int, eager: bool, length: int, epoch_size: int
) -> None:
    stream = StreamWrapper(CountingStream(length), "train", buffer_size=buffer_size, epoch_size=epoch_size)
    with stream:
        epochs = read_epochs(stream, 4)
    assert all(len(epoch) == epoch_size for epoch in epochs)
    assert [n for epoch in epochs for n in epoch] == [n % length for n in range(4 * epoch_size)]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("buffer_size", "eager"), ALL_MODES)
def test_an_empty_stream_gives_empty_epochs(buffer_size: int, eager: bool) -> None:
    stream = StreamWrapper(lambda: iter(()), "train", buffer_size=buffer_size, eager=eager)
    with stream:
        assert read_epochs(stream, 3) == [[], [], []]


@pytest.mark.timeout(10)
def test_an_empty_stream_with_a_fixed_epoch_size_is_a_stream_error() -> None:
    stream = StreamWrapper(lambda: iter(()), "train", epoch_size=10)
    with pytest.raises(StreamError, match="stream `train` yielded no batches, so an epoch of 10 batches"):
        next(stream)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("buffer_size", "eager"), BUFFERED)
def test_a_buffered_empty_stream_with_a_fixed_epoch_size_fails_with_the_cause(
    buffer_size: int, eager: bool
) -> None:
    stream = StreamWrapper(lambda: [], "train", buffer_size=buffer_size, epoch_size=10, eager=eager)
    with stream, pytest.raises(StreamProducerError) as caught:
        next(stream)
    assert isinstance(caught.value.__cause__, StreamError)
    assert "yielded no batches" in str(caught.value)


def test_a_stream_function_returning_a_non_iterable_is_a_type_error() -> None:
    stream = StreamWrapper(lambda: None, "train")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="stream `train`: stream_fn returned a NoneType, not an iterable"):
        next(stream)


# --- buffering ------------------------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("eager", [False, True])
def test_a_buffered_wrapper_read_before_with_is_a_value_error_and_a_stream_error(eager: bool) -> None:
    source = CountingStream(3)
    stream = StreamWrapper(source, "train", buffer=2, eager=eager)
    with pytest.raises(
        ValueError, match="stream `train` has a buffer of 2 batches.*inside `with stream:`"
    ) as caught:
        next(stream)
    assert isinstance(caught.value, StreamError)
    assert isinstance(caught.value, StreamNotEnteredError)
    assert source.calls == 0
    with stream:
        assert numbers(list(stream)) == [0, 1, 2]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("eager", [False, True])
def test_after_a_with_block_the_reader_reads_on_itself_without_a_thread(eager: bool) -> None:
    source = CountingStream(6)
    stream = StreamWrapper(source, "train", buffer=2, eager=eager)
    with stream, stream.allow_buffering:
        assert numbers([next(stream)]) == [0]
        assert source.wait_yielded(3)  # the buffer is full: 1 and 2 wait in it
    rest = []
    for batch in stream:  # as emloop allows: the buffered batches, then the stream read here
        assert producer_threads() == []
        rest.append(batch)
    assert numbers(rest) == [1, 2, 3, 4, 5]
    assert source.yielded == 6
    with stream:  # the epoch ended outside: entering starts nothing of the next epoch
        assert producer_threads() == []
        assert read_epochs(stream, 2) == [[0, 1, 2, 3, 4, 5]] * 2


@pytest.mark.parametrize(("buffer_size", "eager"), BUFFERED)
def test_a_stream_split_over_many_with_blocks_loses_and_reorders_nothing(
    buffer_size: int, eager: bool
) -> None:
    stream = StreamWrapper(CountingStream(5), "train", buffer_size=buffer_size, epoch_size=4, eager=eager)
    read: list[int] = []
    for _ in range(10):
        with stream:
            read.extend(numbers([next(stream), next(stream)]))
        with stream, stream.allow_buffering:
            read.extend(numbers([next(stream), next(stream)]))
            with pytest.raises(StopIteration):
                next(stream)
    assert read == [n % 5 for n in range(40)]


def test_leaving_with_keeps_the_buffered_batches_and_makes_no_more() -> None:
    source = CountingStream(100)
    stream = StreamWrapper(source, "train", buffer=3, eager=True)
    with stream:
        assert numbers([next(stream)]) == [0]
        assert source.wait_yielded(4)
    assert not stream.empty()
    assert source.yielded == 4
    with stream:
        assert numbers([next(stream) for _ in range(5)]) == [1, 2, 3, 4, 5]


def test_empty_reports_the_buffer() -> None:
    assert StreamWrapper(CountingStream(3), "train").empty()
    source = CountingStream(3)
    stream = StreamWrapper(source, "train", buffer=2, eager=True)
    assert stream.empty()
    with stream:
        assert source.wait_yielded(2)
    assert not stream.empty()


@pytest.mark.parametrize("eager", [False, True])
def test_the_producer_works_while_the_consumer_waits_on_an_empty_buffer(eager: bool) -> None:
    stream = StreamWrapper(CountingStream(3), "train", buffer=1, eager=eager)
    with stream:
        assert numbers(list(stream)) == [0, 1, 2]


def test_an_eager_producer_fills_the_buffer_without_allow_buffering() -> None:
    source = CountingStream(100)
    with StreamWrapper(source, "train", buffer=5, eager=True) as stream:
        assert source.wait_yielded(5)
        assert not stream.empty()


def test_a_gated_producer_waits_for_allow_buffering_which_nests() -> None:
    source = CountingStream(100)
    with StreamWrapper(source, "train", buffer=4) as stream:
        assert stream.empty()
        with stream.allow_buffering:
            with stream.allow_buffering:
                assert source.wait_yielded(2)
            assert source.wait_yielded(4)  # still open after the inner block
        made = source.yielded
        assert made == 4
        assert numbers([next(stream) for _ in range(4)]) == [0, 1, 2, 3]
        # the consumer no longer waits and the gate is closed: the buffer stays as it is
        assert not source.wait_yielded(5, timeout_s=0.05)


@pytest.mark.timeout(10)
def test_leaving_with_waits_only_for_the_batch_in_progress() -> None:
    in_batch, finish = threading.Event(), threading.Event()

    def slow_second_batch() -> Iterator[Batch]:
        yield {"i": [0]}
        in_batch.set()
        assert finish.wait(WAIT_S)
        yield {"i": [1]}
        yield {"i": [2]}

    stream = StreamWrapper(slow_second_batch, "train", buffer=4, eager=True)
    with stream:
        assert numbers([next(stream)]) == [0]
        assert in_batch.wait(WAIT_S)
        stop_event = stream._thread_buffer()._stop_event
        assert stop_event is not None
        finisher = threading.Thread(target=lambda: stop_event.wait(WAIT_S) and finish.set())
        finisher.start()
    finisher.join(WAIT_S)
    assert finish.is_set()
    with stream:
        assert numbers(list(stream)) == [1, 2]


# --- emloop's contract: one epoch at a time, a gate that closes --------------------------------------


def makes_no_more(source: CountingStream) -> bool:
    """Return whether ``source`` makes nothing more in a while: long enough for a runaway producer."""
    return not source.wait_yielded(source.yielded + 1, timeout_s=0.1)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("eager", [False, True])
@pytest.mark.parametrize("epoch_size", [-1, 4, 2])
def test_the_producer_stops_at_each_epoch_end_even_with_buffering_allowed(
    eager: bool, epoch_size: int
) -> None:
    source = CountingStream(3)
    stream = StreamWrapper(source, "train", buffer=8, epoch_size=epoch_size, eager=eager)
    batches_per_epoch = 3 if epoch_size < 0 else epoch_size
    with stream, stream.allow_buffering:
        for epoch in range(1, 5):
            assert len(list(stream)) == batches_per_epoch
            assert source.yielded == epoch * batches_per_epoch
            # the producer stops at the epoch end, though the buffer has room and may fill
            assert makes_no_more(source)
            if epoch_size < 0:
                assert source.calls == epoch  # the next pass, with its side effects, has not begun
    assert stream.empty()


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("buffer_size", "eager"), BUFFERED)
def test_what_was_produced_is_what_was_read_plus_at_most_the_buffer_of_this_epoch(
    buffer_size: int, eager: bool
) -> None:
    source = CountingStream(5)
    stream = StreamWrapper(source, "train", buffer_size=buffer_size, epoch_size=7, eager=eager)
    read = 0
    with stream:
        for epoch in range(1, 4):
            with stream.allow_buffering:
                for _ in stream:
                    read += 1
                    assert read <= source.yielded <= min(read + buffer_size, epoch * 7)
            assert source.yielded == read == epoch * 7


@pytest.mark.timeout(10)
def test_entering_with_after_an_epoch_end_starts_no_producer() -> None:
    source = CountingStream(3)
    stream = StreamWrapper(source, "train", buffer=4, eager=True)
    with stream:
        assert numbers(list(stream)) == [0, 1, 2]
    with stream:
        assert producer_threads() == []
        assert source.calls == 1
        assert numbers([next(stream)]) == [0]  # asking for the next epoch starts it
        assert source.calls == 2


def gil_bound_work() -> int:
    return sum(n * n for n in range(20_000))


@pytest.mark.timeout(20)
def test_a_gated_producer_makes_nothing_while_the_reader_works_after_its_wait() -> None:
    source = CountingStream(40)
    stream = StreamWrapper(source, "train", buffer=4)
    read = 0
    with stream:
        for _ in stream:
            read += 1
            gil_bound_work()  # the producer could take the GIL now; the gate must be closed
            assert source.yielded == read
    assert read == 40


# --- errors ---------------------------------------------------------------------------------------


def test_unbuffered_dataset_errors_propagate_as_they_are() -> None:
    error = KeyError("labels")

    def failing() -> Iterator[Batch]:
        raise error
        yield {}

    with pytest.raises(KeyError) as caught:
        next(StreamWrapper(failing, "train"))
    assert caught.value is error


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("buffer_size", "eager"), BUFFERED)
def test_a_producer_error_arrives_in_order_as_child_process_error_with_its_cause(
    buffer_size: int, eager: bool
) -> None:
    stream = StreamWrapper(CountingStream(10, fail_at=3), "train", buffer_size=buffer_size, eager=eager)
    read: list[Batch] = []
    with stream, pytest.raises(ChildProcessError) as caught:
        read.extend(stream)
    assert numbers(read) == [0, 1, 2]
    assert isinstance(caught.value, StreamProducerError)
    assert str(caught.value) == (
        "stream `train` failed in its buffer's producer thread: ValueError: cannot read record 3"
    )
    cause = caught.value.__cause__
    assert isinstance(cause, ValueError)
    assert "_generate" in [frame.name for frame in traceback.extract_tb(cause.__traceback__)]


@pytest.mark.timeout(10)
def test_a_producer_error_reaches_a_waiting_consumer_at_once() -> None:
    def failing() -> Iterator[Batch]:
        raise OSError("disk gone")
        yield {}

    stream = StreamWrapper(failing, buffer=4)
    with stream:
        start = time.perf_counter()
        with pytest.raises(StreamProducerError, match="the stream of .*failing failed.*OSError: disk gone"):
            next(stream)
        assert time.perf_counter() - start < 1.0  # emloop 0.2.1 polls every 2 s


@pytest.mark.timeout(10)
def test_a_failing_stream_function_reaches_the_consumer() -> None:
    def broken_stream() -> list[Batch]:
        raise FileNotFoundError("train.csv")

    with StreamWrapper(broken_stream, "train", buffer=2) as stream, pytest.raises(ChildProcessError):
        next(stream)


def read_events(stream: StreamWrapper, count: int) -> list[int | str]:
    """Read ``count`` times, noting a batch's number, ``end`` for an epoch end or the error's type."""
    events: list[int | str] = []
    for _ in range(count):
        try:
            events.append(next(stream)["i"][0])
        except StopIteration:
            events.append("end")
        except (ValueError, ChildProcessError) as exc:
            events.append(type(exc).__name__)
    return events


@pytest.mark.timeout(10)
@pytest.mark.parametrize("epoch_size", [-1, 3])
def test_after_a_producer_error_the_wrapper_goes_on_like_an_unbuffered_one(epoch_size: int) -> None:
    unbuffered = StreamWrapper(CountingStream(5, fail_at=2), "train", epoch_size=epoch_size)
    expected = read_events(unbuffered, 8)
    buffered = StreamWrapper(CountingStream(5, fail_at=2), "train", buffer=2, epoch_size=epoch_size)
    with buffered:
        events = read_events(buffered, 8)
    assert [event if event != "StreamProducerError" else "ValueError" for event in events] == expected
    assert expected == (
        [0, 1, "ValueError", 0, "end", 1, "ValueError", 0]
        if epoch_size == 3
        else [0, 1, "ValueError", "end", 0, 1, "ValueError", "end"]
    )


@pytest.mark.timeout(10)
def test_system_exit_in_the_producer_is_handed_to_the_consumer() -> None:
    def exiting() -> Iterator[Batch]:
        raise SystemExit(3)
        yield {}

    with StreamWrapper(exiting, "train", buffer=2) as stream, pytest.raises(ChildProcessError) as caught:
        next(stream)
    assert isinstance(caught.value.__cause__, SystemExit)


@pytest.mark.timeout(10)
def test_ctrl_c_while_iterating_a_buffered_stream_stops_and_leaves_no_thread() -> None:
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def endless() -> Iterator[Batch]:
        n = 0
        while True:
            if n == 5:
                signal.pthread_kill(main_thread, signal.SIGINT)
            yield {"i": [n]}
            n += 1

    stream = StreamWrapper(endless, "train", buffer=2)
    with pytest.raises(KeyboardInterrupt), stream:
        for _ in stream:
            pass


# --- profile --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("buffer_size", "eager"), ALL_MODES)
def test_the_profile_gets_one_read_time_per_batch_and_none_for_epoch_ends(
    buffer_size: int, eager: bool
) -> None:
    profile: dict[str, list[float]] = {"other": [1.0]}
    stream = StreamWrapper(CountingStream(3), "train", buffer_size=buffer_size, profile=profile, eager=eager)
    with stream:
        read_epochs(stream, 2)
    assert profile["other"] == [1.0]
    assert len(profile["read_batch_train"]) == 6
    assert all(0 <= seconds < WAIT_S for seconds in profile["read_batch_train"])


def test_an_unnamed_stream_profiles_under_read_batch_none() -> None:
    profile: dict[str, list[float]] = {}
    list(StreamWrapper(CountingStream(2), profile=profile))
    assert list(profile) == ["read_batch_None"]
    assert len(profile["read_batch_None"]) == 2


# --- emloop's own checks, as its tests write them ---------------------------------------------------


class RecordingDataset:
    """Record every batch its stream produced, as emloop's SimpleDataset does."""

    def __init__(self, length: int = 12) -> None:
        self.length = length
        self.produced: list[Batch] = []
        self._changed = threading.Condition()

    def train_stream(self) -> Iterator[Batch]:
        for _ in range(self.length):
            batch = {"i": [len(self.produced)]}
            with self._changed:
                self.produced.append(batch)
                self._changed.notify_all()
            yield batch

    def wait_produced(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.produced) >= count, WAIT_S)


def test_emloop_iteration_reads_what_the_dataset_produced() -> None:
    dataset = RecordingDataset()
    stream = StreamWrapper(dataset.train_stream)
    assert list(stream) + list(stream) == dataset.produced
    dataset = RecordingDataset()
    buffered = StreamWrapper(dataset.train_stream, buffer_size=4)
    with pytest.raises(ValueError):  # noqa: PT011 - emloop's test asks exactly this
        next(buffered)
    with buffered:
        epochs = list(buffered)
    with buffered:
        epochs += list(buffered)
    assert epochs == dataset.produced


@pytest.mark.parametrize("buffer_size", [0, 4])
def test_emloop_epoch_size_reads_what_the_dataset_produced(buffer_size: int) -> None:
    dataset = RecordingDataset(length=50)
    with StreamWrapper(dataset.train_stream, buffer_size=buffer_size, epoch_size=10) as stream:
        epoch = list(stream)
        assert len(epoch) == 10
        epoch += list(stream)
    assert epoch == dataset.produced


def test_emloop_breaking_over_with_blocks_then_reading_on() -> None:
    dataset = RecordingDataset()
    stream = StreamWrapper(dataset.train_stream, buffer_size=4)
    epoch = []
    for _ in range(5):
        with stream:
            epoch.append(next(stream))
    epoch += list(stream)
    assert epoch == dataset.produced


def test_emloop_allow_buffering_reads_what_the_dataset_produced() -> None:
    dataset = RecordingDataset()
    stream = StreamWrapper(dataset.train_stream, buffer_size=4)
    with stream:
        with stream.allow_buffering:
            assert dataset.wait_produced(4)  # emloop's test sleeps here while the buffer fills
        epochs = list(stream)
        with stream.allow_buffering:
            epochs += list(stream)
        with stream.allow_buffering, stream.allow_buffering:
            epochs += list(stream)
    assert epochs == dataset.produced


def test_emloop_simple_iterator_and_empty_stream() -> None:
    stream = StreamWrapper(lambda: [1, 2])  # type: ignore[list-item,return-value]
    next(stream)
    assert next(stream) == 2
    with pytest.raises(StopIteration):
        next(stream)
    assert list(StreamWrapper(list)) == []
    with StreamWrapper(list, buffer_size=4) as buffered:
        assert list(buffered) == []


def test_emloop_private_methods_keep_their_documented_meaning() -> None:
    stream = StreamWrapper(CountingStream(3), "train", epoch_size=2)
    assert stream._epoch_limit_reached() is False
    assert stream._get_stream() is stream._get_stream()
    assert numbers([stream._next_batch(), stream._next_batch()]) == [0, 1]  # type: ignore[list-item]
    assert stream._epoch_limit_reached() is True
    assert stream._next_batch() is None  # the epoch end resets the count
    assert stream._epoch_limit_reached() is False

    source = CountingStream(3)
    buffered = StreamWrapper(source, "train", buffer=8, eager=True)
    with pytest.raises(ValueError, match="inside `with stream:`"):
        buffered._dequeue_batch()
    buffered._enqueue_batches(threading.Event())  # here, not in a thread: one epoch and its end
    assert source.yielded == 3
    assert not buffered.empty()
    with buffered:
        assert numbers(list(buffered)) == [0, 1, 2]
        assert buffered._dequeue_batch() == {"i": [0]}

    source = CountingStream(10)
    buffered = StreamWrapper(source, "train", buffer=3, eager=True)
    buffered._start_thread()
    assert source.wait_yielded(3)
    buffered._stop_thread()  # keeps the queue content and the stream state
    assert producer_threads() == []
    assert source.yielded == 3
    with buffered:
        assert numbers(list(buffered)) == list(range(10))


# --- the gated reader makes an awaited batch itself (NOTE [buffer inline]) -------------------------


def test_a_gated_reader_makes_awaited_batches_itself_and_the_producer_those_of_allow_buffering() -> None:
    makers: list[str] = []
    second_started = threading.Event()

    def stream() -> Iterator[Batch]:
        for i in range(6):
            makers.append(threading.current_thread().name)
            if i == 1:
                second_started.set()
            yield {"i": [i]}

    wrapper = StreamWrapper(stream, "train", buffer=1)
    with wrapper:
        first = next(wrapper)  # the buffer is empty and the gate closed: made in this thread
        with wrapper.allow_buffering:  # the producer makes the next batch meanwhile
            assert second_started.wait(WAIT_S)
        rest = [batch["i"][0] for batch in wrapper]  # the producer's batch first, then made here
    assert [first["i"][0], *rest] == list(range(6))
    assert makers[0] == threading.current_thread().name
    assert makers[1].startswith("emloop-ds producer")
    assert makers[2:] == [threading.current_thread().name] * 4


def test_a_ctrl_c_before_an_inline_item_starts_leaves_the_stream_readable() -> None:
    stream = StreamWrapper(CountingStream(100), "train", buffer_size=2)

    def interrupt_inline_item(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_name == "_make_item_inline":
            sys.settrace(None)
            raise KeyboardInterrupt  # as a SIGINT at its first instruction would
        return None

    with stream:
        assert next(stream) == {"i": [0]}
        sys.settrace(interrupt_inline_item)
        try:
            with pytest.raises(KeyboardInterrupt):
                next(stream)
        finally:
            sys.settrace(None)
        read: list[Batch] = []
        reader = threading.Thread(target=lambda: read.append(next(stream)), daemon=True)
        reader.start()
        reader.join(WAIT_S)
    assert read == [{"i": [1]}]


def test_emloops_enqueue_batches_can_be_called_epoch_after_epoch() -> None:
    stream = StreamWrapper(CountingStream(3), "train", buffer=8, eager=True)
    caller = threading.Thread(target=lambda: [stream._enqueue_batches(threading.Event()) for _ in range(2)])
    caller.start()
    caller.join(WAIT_S)
    assert not caller.is_alive()
    assert not stream.empty()
