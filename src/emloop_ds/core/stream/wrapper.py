"""Wrap a dataset stream: restart it after each pass, cut fixed-size epochs, buffer batches, time reads."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any, Self, cast, overload

from emloop_ds.core.errors import StreamError, StreamProducerError, describe_exception
from emloop_ds.core.types import Batch

__all__ = ["BufferingGate", "Profile", "StreamWrapper"]

Profile = MutableMapping[str, list[float]]
"""Timings in seconds by event name, such as ``read_batch_train``; a plain dict or a ``defaultdict(list)``."""

_POSITIONAL_PARAMETERS = ("buffer_size", "epoch_size", "name", "profile")
_KEYWORD_PARAMETERS = frozenset({*_POSITIONAL_PARAMETERS, "buffer", "eager"})

# NOTE [buffer protocol]
# A buffered wrapper keeps one producer thread per `with` block. One condition, `_ready`, guards the
# buffer, the gate and `_is_producing`; the producer waits on it for a free slot, the consumer for an item.
# - The producer waits for a free slot before it starts an item, and only it adds items, so the item it is
#   in the middle of always finds its slot: stopping never drops a batch nor overfills the buffer.
# - Items are batches, None for an epoch end, or a _ProducerFailure, all in stream order: a failure
#   reaches the consumer right after the batches made before it, as soon as it asks for the next batch,
#   and is raised there as StreamProducerError (a ChildProcessError) from the original exception.
# - A failed producer ends itself; the consumer starts a new one when it next needs an item, so the
#   wrapper keeps working like an unbuffered one after an error (the error is never a silent epoch end).
# - The stream iterator and the epoch count live in the wrapper and only the running producer touches
#   them, so consecutive `with` blocks continue the same stream.
# - At most one thread waits on `_ready` besides the one notifying, so `notify()` wakes the right one.
#
# NOTE [buffer gate]
# Gated (the default, as emloop documents it): the producer starts an item only while the gate is open,
# that is while some thread is inside `allow_buffering` or the consumer waits on an empty buffer. The
# gate is checked before each item, never during one: closing it does not interrupt a batch. Entries
# nest and count, so the gate stays open until the last one leaves. Eager: the gate is ignored.
#
# NOTE [buffer shutdown]
# `__exit__` sets the producer's stop event, wakes it and joins it: the producer finishes the batch it is
# in the middle of (which stays buffered) and starts no other, so leaving `with` takes at most that long
# and leaves no thread running. Producer threads are daemons only so that a dataset stuck inside one batch
# cannot keep the process alive once the join itself is interrupted (a second Ctrl-C).


class _ProducerFailure:
    """Carry an exception from the producer thread to the consumer, in stream order."""

    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


class BufferingGate:
    """Allow a gated producer to prepare batches while entered; nestable, usable from any thread."""

    __slots__ = ("_wrapper",)

    def __init__(self, wrapper: StreamWrapper) -> None:
        self._wrapper = wrapper

    def __enter__(self) -> None:
        self._wrapper._open_gate()

    def __exit__(self, *exc_info: object) -> None:
        self._wrapper._close_gate()


class StreamWrapper:
    """Dataset stream wrapper which manages buffering, epoch cutting etc.

    It restarts the dataset stream after each pass, cuts epochs of ``epoch_size`` batches across those
    restarts, optionally prepares up to ``buffer_size`` batches in a background thread, and records how
    long each read waited in ``profile``. A buffered wrapper must be iterated inside ``with``::

        stream = StreamWrapper(dataset.train_stream, 'train')
        for batch in stream:  # 1st epoch
            ...
        stream = StreamWrapper(dataset.train_stream, 'train', buffer=16, epoch_size=1000)
        with stream:
            for batch in stream:  # 1st epoch of 1000 batches
                ...
    """

    @overload
    def __init__(
        self,
        stream_fn: Callable[[], Iterable[Batch]],
        buffer_size: int = 0,
        epoch_size: int = -1,
        name: str | None = None,
        profile: Profile | None = None,
        *,
        buffer: int = ...,
        eager: bool = False,
    ) -> None: ...

    @overload
    def __init__(
        self,
        stream_fn: Callable[[], Iterable[Batch]],
        name: str,
        /,
        *,
        buffer_size: int = 0,
        buffer: int = ...,
        epoch_size: int = -1,
        profile: Profile | None = None,
        eager: bool = False,
    ) -> None: ...

    def __init__(self, stream_fn: Callable[[], Iterable[Batch]], *args: Any, **kwargs: Any) -> None:
        """Create a new StreamWrapper.

        Args:
            stream_fn: returns a new iterable of batches for each pass, e.g. ``dataset.train_stream``.
            buffer_size: how many batches a background thread prepares ahead; below 1 means no buffer.
                ``buffer`` is another spelling.
            epoch_size: if above 0, every epoch has exactly that many batches, continuing over restarts
                of the stream; otherwise an epoch is one pass of the stream.
            name: the stream's name; a string in second place is the name.
            profile: each batch's read time is appended to ``profile['read_batch_<name>']``.
            eager: prepare batches whenever the buffer has room instead of only during
                ``allow_buffering``; right for streams that release the GIL.

        Raises:
            TypeError: if the arguments are malformed.
        """
        options = _bind_arguments(args, kwargs)
        _check_arguments(stream_fn, options)
        self._stream_fn = stream_fn
        self._buffer_size: int = max(options.get("buffer_size", 0), 0)
        self._epoch_size: int = options.get("epoch_size", -1)
        self._name: str | None = options.get("name")
        self._profile: Profile | None = options.get("profile")
        self._profile_key = f"read_batch_{self._name}"
        self._is_eager: bool = options.get("eager", False)
        self._batch_count = 0
        self._stream: Iterator[Batch] | None = None
        self._is_stream_fresh = False
        self._buffer: deque[Any] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._gate_openers = 0
        self._with_depth = 0
        self._is_producing = False
        self._thread: threading.Thread | None = None
        self._stop_event: threading.Event | None = None
        self._gate = BufferingGate(self)

    @property
    def name(self) -> str | None:
        """Stream name."""
        return self._name

    @property
    def allow_buffering(self) -> BufferingGate:
        """A resource that allows the stream object to prepare batches in advance.

        A gated (default) buffered wrapper prepares batches only while some code is inside this resource
        or while the consumer waits for an empty buffer, so that it does not compete with the consumer for
        the GIL. Use it where the consumer releases the GIL::

            with stream.allow_buffering:
                call_native_backend(batch)  # blocks but releases the GIL; the next batch is prepared

        Entries nest. An eager or unbuffered wrapper ignores it.
        """
        return self._gate

    def empty(self) -> bool:
        """Return whether the buffer is empty (always true without a buffer)."""
        return not self._buffer

    def __enter__(self) -> Self:
        """If buffered, start the enqueueing thread."""
        if self._buffer_size > 0:
            self._with_depth += 1
            if self._with_depth == 1:
                self._start_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """If buffered, terminate the enqueueing thread, keeping the buffered batches and stream position."""
        if self._buffer_size > 0 and self._with_depth > 0:
            self._with_depth -= 1
            if self._with_depth == 0:
                self._stop_thread()

    def __iter__(self) -> Iterator[Batch]:
        """Get stream iterator."""
        return self

    def __next__(self) -> Batch:
        """Return next batch or end epoch with ``StopIteration``.

        Raises:
            StopIteration: at the end of the epoch.
            StreamProducerError: if the buffer's producer failed (a ``ChildProcessError``).
            StreamError: if a fixed-size epoch cannot be filled because the stream yields nothing.
            RuntimeError: if a buffered wrapper is iterated outside ``with``.
        """
        if self._profile is None:
            batch = self._dequeue_batch() if self._buffer_size > 0 else self._next_batch()
            if batch is None:
                raise StopIteration
            return batch
        start = time.perf_counter()
        batch = self._dequeue_batch() if self._buffer_size > 0 else self._next_batch()
        if batch is None:
            raise StopIteration
        self._profile.setdefault(self._profile_key, []).append(time.perf_counter() - start)
        return batch

    def _describe(self) -> str:
        if self._name is not None:
            return f"stream `{self._name}`"
        return f"the stream of {getattr(self._stream_fn, '__qualname__', repr(self._stream_fn))}"

    def _get_stream(self) -> Iterator[Batch]:
        """Possibly create and return raw dataset stream iterator."""
        if self._stream is None:
            stream = self._stream_fn()
            try:
                self._stream = iter(stream)
            except TypeError as exc:
                raise TypeError(
                    f"{self._describe()}: stream_fn returned a {type(stream).__name__}, "
                    "not an iterable of batches"
                ) from exc
            self._is_stream_fresh = True
        return self._stream

    def _epoch_limit_reached(self) -> bool:
        """Return True if the number of produced batches reached ``epoch_size`` (never without a limit)."""
        return 0 < self._epoch_size <= self._batch_count

    def _next_batch(self) -> Batch | None:
        """Return a single batch or None signaling epoch end.

        The epoch ends when the stream ends and there is no epoch size, or after ``epoch_size`` batches.

        Raises:
            StreamError: if a fixed-size epoch needs batches from a stream that yields none.
        """
        if self._epoch_limit_reached():
            self._batch_count = 0
            return None
        while True:
            try:
                batch = next(self._get_stream())
            except StopIteration:
                is_fresh, self._stream = self._is_stream_fresh, None
                if self._epoch_size <= 0:
                    self._batch_count = 0
                    return None
                if is_fresh:
                    raise StreamError(
                        f"{self._describe()} yielded no batches, so an epoch of {self._epoch_size} batches "
                        "cannot be filled; make the stream yield batches"
                    ) from None
                continue
            self._is_stream_fresh = False
            self._batch_count += 1
            return batch

    def _start_thread(self) -> None:
        """Start an enqueueing thread once the previous one, told to stop or failed, has ended."""
        if self._thread is not None:
            self._thread.join()  # normally done; still busy only if a Ctrl-C interrupted _stop_thread
        stop_event = threading.Event()
        self._thread = threading.Thread(
            target=self._enqueue_batches,
            args=(stop_event,),
            name=f"emloop-ds producer of {self._describe()}",
            daemon=True,  # NOTE [buffer shutdown]
        )
        self._stop_event = stop_event
        self._is_producing = True
        self._thread.start()

    def _stop_thread(self) -> None:
        """Stop the enqueueing thread. Keep the queue content and stream state (NOTE [buffer shutdown])."""
        thread, stop_event = self._thread, self._stop_event
        if thread is None or stop_event is None:
            return
        with self._ready:
            stop_event.set()
            self._ready.notify()
        thread.join()
        self._thread = self._stop_event = None

    def _enqueue_batches(self, stop_event: threading.Event) -> None:
        """Enqueue the stream's batches and None at each epoch end until ``stop_event`` is set.

        The producer never raises: an exception ends it after being handed to the consumer in stream
        order (NOTE [buffer protocol]).
        """
        failure = None
        try:
            with self._ready:
                may_produce = self._wait_for_slot(stop_event)
            while may_produce:
                item = self._next_batch()
                with self._ready:
                    self._buffer.append(item)
                    self._ready.notify()
                    may_produce = self._wait_for_slot(stop_event)
        # Even SystemExit must reach the consumer rather than end the thread quietly.
        except BaseException as exc:
            failure = _ProducerFailure(exc)
        with self._ready:
            if failure is not None:
                self._buffer.append(failure)
            self._is_producing = False
            self._ready.notify()

    def _wait_for_slot(self, stop_event: threading.Event) -> bool:
        """Wait, holding ``_ready``, until the producer may start an item; return False once told to stop."""
        while not stop_event.is_set():
            if len(self._buffer) < self._buffer_size and (self._is_eager or self._gate_openers > 0):
                return True
            self._ready.wait()  # NOTE [buffer gate]
        return False

    def _dequeue_batch(self) -> Batch | None:
        """Return a single batch from queue or None signaling epoch end.

        Raises:
            ChildProcessError: a ``StreamProducerError`` caused by the producer's exception.
            RuntimeError: if used outside ``with``.
        """
        if self._with_depth == 0:
            raise RuntimeError(
                f"{self._describe()} has a buffer of {self._buffer_size} batches, so it must be iterated "
                "inside `with stream:`, which runs and stops its producer thread; wrap the loop in it"
            )
        with self._ready:
            if not self._buffer:
                self._wait_for_item()
            item = self._buffer.popleft()
            self._ready.notify()
        if type(item) is _ProducerFailure:
            cause = describe_exception(item.exception)
            raise StreamProducerError(
                f"{self._describe()} failed in its buffer's producer thread: {cause}"
            ) from item.exception
        return cast("Batch | None", item)

    def _wait_for_item(self) -> None:
        """Wait, holding ``_ready``, for an item, keeping the gate open meanwhile (NOTE [buffer gate])."""
        self._gate_openers += 1
        self._ready.notify()
        try:
            while not self._buffer:
                if not self._is_producing:  # the last producer failed (NOTE [buffer protocol])
                    self._start_thread()
                self._ready.wait()
        finally:
            self._gate_openers -= 1

    def _open_gate(self) -> None:
        if self._buffer_size > 0 and not self._is_eager:
            with self._ready:
                self._gate_openers += 1
                self._ready.notify()

    def _close_gate(self) -> None:
        if self._buffer_size > 0 and not self._is_eager:
            with self._ready:
                self._gate_openers -= 1


def _bind_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map arguments onto parameter names, accepting a name in second place and ``buffer`` for buffer_size."""
    unknown = sorted(set(kwargs) - _KEYWORD_PARAMETERS)
    if unknown:
        raise TypeError(f"StreamWrapper() got an unexpected keyword argument {unknown[0]!r}")
    names: tuple[str, ...] = _POSITIONAL_PARAMETERS
    if args and isinstance(args[0], str):
        names = ("name",)
        if len(args) > 1:
            raise TypeError(
                "StreamWrapper(stream_fn, name, ...) takes the other arguments by keyword, "
                "e.g. StreamWrapper(dataset.train_stream, 'train', buffer=16, epoch_size=1000)"
            )
    if len(args) > len(names):
        raise TypeError(f"StreamWrapper() takes at most {len(names) + 1} positional arguments")
    bound = dict(kwargs)
    for key, value in zip(names, args, strict=False):
        if key in bound:
            raise TypeError(f"StreamWrapper() got multiple values for argument {key!r}")
        bound[key] = value
    if "buffer" in bound:
        if "buffer_size" in bound:
            raise TypeError("StreamWrapper() got both buffer and buffer_size, two spellings of one argument")
        bound["buffer_size"] = bound.pop("buffer")
    return bound


def _check_arguments(stream_fn: object, options: dict[str, Any]) -> None:
    """Raise TypeError for an argument of the wrong type."""
    if not callable(stream_fn):
        raise TypeError(
            f"StreamWrapper() needs a function returning an iterable of batches, such as "
            f"dataset.train_stream, not a {type(stream_fn).__name__}"
        )
    for key in ("buffer_size", "epoch_size"):
        value = options.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"StreamWrapper() {key} must be an int, not {type(value).__name__}")
    checks = (("name", str, "a str or None"), ("profile", MutableMapping, "a dict or None"))
    for key, expected, description in checks:
        value = options.get(key)
        if value is not None and not isinstance(value, expected):
            raise TypeError(f"StreamWrapper() {key} must be {description}, not {type(value).__name__}")
    eager = options.get("eager", False)
    if not isinstance(eager, bool):
        raise TypeError(f"StreamWrapper() eager must be a bool, not {type(eager).__name__}")
    if eager and options.get("buffer_size", 0) < 1:
        raise TypeError("StreamWrapper() eager=True needs a buffer: pass buffer_size of 1 or more")
