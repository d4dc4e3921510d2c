"""Prepare a stream's batches ahead of the reader in a producer thread, within a bounded buffer."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn, cast

from emloop_ds.core.errors import StreamNotEnteredError, StreamProducerError, describe_exception
from emloop_ds.core.types import Batch

__all__ = ["BufferingGate", "ThreadBuffer"]

# NOTE [buffer protocol]
# A buffered wrapper runs one producer thread at a time, only inside `with`. One condition, `_ready`,
# guards the buffer, the gate and the producer's state; the producer waits on it for a free slot, the
# consumer for an item.
# - The producer waits for a free slot before it starts an item, and only it adds items, so the item it is
#   in the middle of always finds its slot: stopping never drops a batch nor overfills the buffer.
# - Items are batches, None for an epoch end, or a _ProducerFailure, all in stream order: a failure
#   reaches the consumer right after the batches made before it, as soon as it asks for the next batch,
#   and is raised there as StreamProducerError (a ChildProcessError) from the original exception.
# - A failed producer ends itself; the consumer starts a new one when it next needs an item and the
#   buffer is empty, so after an error the wrapper goes on like an unbuffered one (the error is never a
#   silent epoch end).
# - The stream iterator and the epoch count live in the EpochCutter and only the running producer touches
#   them, so consecutive `with` blocks continue the same stream.
# - At most one thread waits on `_ready` besides the one notifying, so `notify()` wakes the right one.
#
# NOTE [buffer epochs]
# The producer stops at the end of each epoch, as emloop's `_enqueue_batches` does: once it has enqueued
# the epoch end (None), `_enqueue_batches` returns and the thread pauses (`_is_paused`, also set by a
# failure). Only the reader unpauses it, when it asks for a batch and finds the buffer empty: that is,
# once it has read the epoch end and asks for the next epoch's first batch. Entering `with` restarts a
# producer only if `with` had stopped it mid-epoch. So nothing of the next epoch is made early, whatever
# the gate or eager say, and a dataset has always made exactly the batches read plus at most `size` of the
# current epoch. Pausing rather than ending the thread keeps an epoch boundary at the cost of one wake.
#
# NOTE [buffer gate]
# Gated (the default, as emloop documents it): the producer starts an item only while the gate is open,
# that is while some thread is inside `allow_buffering` or the reader waits on an empty buffer. The
# reader's wait counts only until it is handed an item: the producer clears `_is_reader_waiting` as it
# adds that item, before it decides on the next one, so no batch is made during the reader's own Python
# work. The gate is checked before each item, never during one: closing it does not interrupt a batch.
# Entries nest and count, so the gate stays open until the last one leaves. Eager: the gate is ignored.
#
# NOTE [buffer inline]
# A gated reader that finds the buffer empty, the gate closed and the producer idle (between items, or
# paused at an epoch end) makes the item itself instead of waking the producer and waiting for it: the
# producer would only run while the reader waits, so the items, their order and the count of batches made
# are the same, and the two thread hand-overs per batch are saved. `_is_item_in_progress` says that some
# thread (the producer, or the reader inline) is inside `produce`, so the other never starts an item
# meanwhile; the producer also stays paused while an inline item ended the epoch. An exception raised
# inline reaches the reader as the same StreamProducerError a producer's would; a Ctrl-C that lands inside
# an inline item is the reader's own KeyboardInterrupt and ends the dataset's iterator, as without a buffer.
#
# NOTE [buffer shutdown]
# `stop` (the wrapper's `__exit__`) sets the producer's stop event, wakes it and joins it: the producer
# finishes the batch it is in the middle of (which stays buffered) and starts no other, so leaving `with`
# takes at most that long and leaves no thread running. Producer threads are daemons only so that a
# dataset stuck inside one batch cannot keep the process alive once the join itself is interrupted (a
# second Ctrl-C).


class _ProducerFailure:
    """Carry an exception from the producer thread to the consumer, in stream order."""

    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


class BufferingGate:
    """Allow a gated producer to prepare batches while entered; nestable, usable from any thread."""

    __slots__ = ("_buffer",)

    def __init__(self, buffer: ThreadBuffer) -> None:
        self._buffer = buffer

    def __enter__(self) -> None:
        self._buffer._open_gate()

    def __exit__(self, *exc_info: object) -> None:
        self._buffer._close_gate()


class ThreadBuffer:
    """Prepare up to ``size`` items of ``produce`` ahead of the reader in a producer thread.

    A ``BatchSource``: ``produce`` returns a batch or None at an epoch end (``EpochCutter.next_batch``).
    ``start`` and ``stop`` (the wrapper's ``with``) allow and stop the producer, which works one epoch at a
    time (NOTE [buffer epochs]).
    """

    def __init__(
        self, produce: Callable[[], Batch | None], size: int, is_eager: bool, description: str
    ) -> None:
        self._produce = produce
        self._size = size
        self._is_eager = is_eager
        self._description = description
        self._buffer: deque[Any] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._gate_openers = 0
        self._is_reader_waiting = False
        self._is_entered = False
        self._was_entered = False
        self._is_producing = False
        self._is_paused = False
        self._is_item_in_progress = False  # NOTE [buffer inline]
        self._thread: threading.Thread | None = None
        self._stop_event: threading.Event | None = None
        self._gate = BufferingGate(self)
        # What the reader was handed, for a resume state (NOTE [resume position], wrapper.py).
        self._delivered = 0
        self._epoch_start = 0
        self._epochs_ended = 0

    @property
    def allow_buffering(self) -> BufferingGate:
        """Return the gate that lets a gated producer work while entered (NOTE [buffer gate])."""
        return self._gate

    def empty(self) -> bool:
        """Return whether the buffer is empty."""
        return not self._buffer

    def start(self) -> None:
        """Allow reading until ``stop``; restart a producer that ``stop`` ended (NOTE [buffer epochs])."""
        self._is_entered = self._was_entered = True
        if not self._is_paused:
            self._start_thread()

    def stop(self) -> None:
        """Stop the producer thread, keeping the buffered items and the stream position."""
        self._is_entered = False
        self._stop_thread()
        self._is_item_in_progress = False  # only the reader, calling this, can be making an item now

    def next_batch(self) -> Batch | None:
        """Return a single batch from the buffer or None signaling epoch end.

        Raises:
            ChildProcessError: a ``StreamProducerError`` caused by the producer's exception.
            StreamNotEnteredError: if read before ever entering ``with`` (a ``ValueError``).
        """
        if not self._is_entered:
            return self._next_batch_outside_with()
        is_inline = False
        try:
            with self._ready:
                if not self._buffer and self._may_make_item_inline():  # NOTE [buffer inline]
                    is_inline = self._is_item_in_progress = True
                    self._is_paused = False  # the reader asks for this item: NOTE [buffer epochs]
                else:
                    if not self._buffer:
                        self._wait_for_item()
                    item = self._buffer.popleft()
                    self._ready.notify()
            if is_inline:
                item = self._make_item_inline()
        except KeyboardInterrupt:
            if is_inline:  # interrupted before _make_item_inline took over the mark
                with self._ready:
                    self._is_item_in_progress = False
                    self._ready.notify()
            raise
        if item is None:
            self._end_epoch()
            return None
        if type(item) is _ProducerFailure:
            self._raise_failure(item)
        self._delivered += 1
        return cast("Batch", item)

    def position(self) -> tuple[int, int, int]:
        """Return the epoch ends handed out, the batches handed out, and those when the last epoch ended."""
        return self._epochs_ended, self._delivered, self._epoch_start

    def resume_epoch(self, batch: int) -> None:
        """Count the current epoch from its batch ``batch``, for a resumed stream."""
        self._epoch_start = -batch

    def _end_epoch(self) -> None:
        self._epoch_start = self._delivered
        self._epochs_ended += 1

    def _may_make_item_inline(self) -> bool:
        """Return, holding ``_ready`` over an empty buffer, whether the reader makes the item itself."""
        return not (
            self._is_eager
            or self._gate_openers > 0
            or self._is_item_in_progress
            or not self._is_producing  # a failed or stopped producer is restarted by _wait_for_item
        )

    def _make_item_inline(self) -> Batch | None:
        """Make the next item in the reader's thread, marked in progress by it (NOTE [buffer inline])."""
        item: Batch | None = None
        failure: _ProducerFailure | None = None
        is_epoch_end = False
        try:
            item = self._produce()
            is_epoch_end = item is None
        except KeyboardInterrupt:  # Ctrl-C in the reader's own thread stays the reader's
            raise
        except BaseException as exc:  # the dataset's, even SystemExit, as from the producer thread
            failure = _ProducerFailure(exc)
        finally:
            with self._ready:
                self._is_item_in_progress = False
                self._is_paused = is_epoch_end  # NOTE [buffer epochs]
                self._ready.notify()
        if failure is not None:
            self._raise_failure(failure)
        return item

    def _next_batch_outside_with(self) -> Batch | None:
        """Return the next item without a producer thread, as emloop allows once ``with`` was entered.

        NOTE [buffer outside with]: emloop raises if the wrapper was never entered, and afterwards starts
        a producer thread that nothing stops. Here the reader takes what is buffered, then reads the stream
        itself: the same items in the same order, and no thread left behind.
        """
        if not self._was_entered:
            raise StreamNotEnteredError(
                f"{self._description} has a buffer of {self._size} batches, so it must be iterated "
                "inside `with stream:`, which runs and stops its producer thread; wrap the loop in it"
            )
        self._stop_thread()  # a no-op unless a Ctrl-C interrupted the last one (NOTE [buffer shutdown])
        if self._buffer:
            item = self._buffer.popleft()
            if type(item) is _ProducerFailure:
                self._raise_failure(item)
        else:
            self._is_paused = True  # if the read fails, a later `with` must not start a producer
            item = self._produce()
            self._is_paused = item is None  # NOTE [buffer epochs]
        if item is None:
            self._end_epoch()
        else:
            self._delivered += 1
        return cast("Batch | None", item)

    def _raise_failure(self, failure: _ProducerFailure) -> NoReturn:
        """Raise a producer's failure as ``StreamProducerError`` caused by the original exception."""
        cause = describe_exception(failure.exception)
        raise StreamProducerError(
            f"{self._description} failed in its buffer's producer thread: {cause}"
        ) from failure.exception

    def _start_thread(self) -> None:
        """Start an enqueueing thread once the previous one has ended; hold ``_ready`` if one may run."""
        if self._thread is not None:
            self._thread.join()  # normally done; still busy only if a Ctrl-C interrupted _stop_thread
        stop_event = threading.Event()
        self._thread = threading.Thread(
            target=self._produce_epochs,
            args=(stop_event,),
            name=f"emloop-ds producer of {self._description}",
            daemon=True,  # NOTE [buffer shutdown]
        )
        self._stop_event = stop_event
        self._is_producing = True
        self._is_paused = False
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

    def _produce_epochs(self, stop_event: threading.Event) -> None:
        """Enqueue epoch after epoch, each once the reader asks for it, until stopped or failed."""
        while self._enqueue_batches(stop_event) and self._wait_for_next_epoch(stop_event):
            pass
        with self._ready:
            self._is_producing = False
            self._ready.notify()

    def _enqueue_batches(self, stop_event: threading.Event) -> bool:
        """Enqueue the rest of the epoch and None at its end; return False if stopped or failed first.

        It never raises: an exception is handed to the consumer in stream order (NOTE [buffer protocol]).
        """
        try:
            with self._ready:
                self._is_paused = False  # this call makes the next epoch (NOTE [buffer epochs])
                may_produce = self._wait_for_slot(stop_event)
            while may_produce:
                item = self._produce()
                with self._ready:
                    # Cleared with the append, so an inline reader never overtakes it (NOTE [buffer inline]).
                    self._is_item_in_progress = False
                    self._buffer.append(item)
                    self._is_reader_waiting = False  # NOTE [buffer gate]
                    self._ready.notify()
                    if item is None:  # with the epoch end, so the reader can unpause only after it
                        self._is_paused = True  # NOTE [buffer epochs]
                        return True
                    may_produce = self._wait_for_slot(stop_event)
        # Even SystemExit must reach the consumer rather than end the thread quietly.
        except BaseException as exc:
            with self._ready:
                self._is_item_in_progress = False
                self._buffer.append(_ProducerFailure(exc))
                self._is_paused = True
                self._ready.notify()
        return False

    def _wait_for_next_epoch(self, stop_event: threading.Event) -> bool:
        """Wait until the reader asks for the next epoch (NOTE [buffer epochs]); False once told to stop."""
        with self._ready:
            while self._is_paused and not stop_event.is_set():
                self._ready.wait()
            return not stop_event.is_set()

    def _wait_for_slot(self, stop_event: threading.Event) -> bool:
        """Wait, holding ``_ready``, until the producer may start an item; return False once told to stop."""
        while not stop_event.is_set():
            if (
                len(self._buffer) < self._size
                and not self._is_item_in_progress
                and not self._is_paused  # an inline item ended the epoch (NOTE [buffer inline])
                and (self._is_eager or self._gate_openers > 0 or self._is_reader_waiting)
            ):
                self._is_item_in_progress = True
                return True
            self._ready.wait()  # NOTE [buffer gate]
        return False

    def _wait_for_item(self) -> None:
        """Wait, holding ``_ready``, for an item, keeping the gate open meanwhile (NOTE [buffer gate])."""
        self._is_reader_waiting = True
        self._is_paused = False  # NOTE [buffer epochs]
        self._ready.notify()
        try:
            while not self._buffer:
                if not self._is_producing:  # failed, or stopped at an epoch end (NOTE [buffer protocol])
                    self._start_thread()
                self._ready.wait()
        finally:
            self._is_reader_waiting = False

    def _open_gate(self) -> None:
        if not self._is_eager:
            with self._ready:
                self._gate_openers += 1
                self._ready.notify()

    def _close_gate(self) -> None:
        if not self._is_eager:
            with self._ready:
                self._gate_openers -= 1
