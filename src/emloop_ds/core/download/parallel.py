"""Run a function over many items from a few threads, handing the first exception to the caller."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["run_parallel"]

T = TypeVar("T")
R = TypeVar("R")


def run_parallel(
    function: Callable[[T], R], items: Sequence[T], jobs: int, cancel: threading.Event
) -> list[R]:
    """Call ``function`` on every item from ``jobs`` threads; return the results in the items' order.

    The threads are daemons: after Ctrl-C the main thread sets ``cancel`` and leaves at once instead of
    waiting for a stalled transfer to time out; every file written is crash-safe, so nothing is lost.
    An exception (a bug: failures are results) is handed to the caller and raised there.
    """
    todo: queue.SimpleQueue[tuple[int, T]] = queue.SimpleQueue()
    for index, item in enumerate(items):
        todo.put((index, item))
    done: queue.SimpleQueue[tuple[int, R | None, BaseException | None]] = queue.SimpleQueue()

    def work() -> None:
        while not cancel.is_set():
            try:
                index, item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((index, function(item), None))
            except BaseException as exc:  # handed to the consumer below
                done.put((index, None, exc))

    for number in range(min(jobs, len(items))):
        threading.Thread(target=work, name=f"emloop-ds-download-{number}", daemon=True).start()
    results: dict[int, R] = {}
    try:
        for _ in items:
            index, result, error = done.get()
            if error is not None:
                raise error
            results[index] = result  # type: ignore[assignment]
    except BaseException:
        cancel.set()
        raise
    return [results[index] for index in range(len(items))]
