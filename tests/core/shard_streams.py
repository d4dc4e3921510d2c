"""Shardable streams for the worker-process tests: importable by name, so worker processes can run them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emloop_ds import Shard


def numbered(shard: Shard = Shard(0, 1), lengths: Sequence[int] = (3,)) -> Iterator[dict[str, Any]]:
    """Yield ``lengths[shard.index]`` batches naming their shard, number and pass."""
    for number in range(lengths[shard.index]):
        yield {"shard": [shard.index], "number": [number], "epoch": [shard.epoch]}


def counted(shard: Shard, log_dir: str, length: int) -> Iterator[dict[str, Any]]:
    """Yield ``length`` batches, appending a line to ``<log_dir>/<shard>.log`` as each is made."""
    log = Path(log_dir) / f"{shard.index}.log"
    for number in range(length):
        with log.open("a", encoding="utf-8") as file:
            file.write(f"{shard.epoch} {number}\n")
        yield {"shard": [shard.index], "number": [number]}


class DatasetBroke(ValueError):
    """A dataset's own error, raised in a worker."""


def failing(shard: Shard, failing_shard: int, fail_at: int, length: int) -> Iterator[dict[str, Any]]:
    """Yield ``length`` batches, but raise ``DatasetBroke`` at batch ``fail_at`` of ``failing_shard``."""
    for number in range(length):
        if shard.index == failing_shard and number == fail_at:
            raise DatasetBroke(f"bad record {number} in shard {shard.index}")
        yield {"shard": [shard.index], "number": [number]}


class HoldsALock(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class NeedsTwoArguments(Exception):
    """An exception that pickles but cannot be unpickled: its constructor needs two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")


def raising(shard: Shard, kind: str) -> Iterator[dict[str, Any]]:
    """Yield one batch, then raise an exception that cannot cross as itself."""
    yield {"shard": [shard.index]}
    if kind == "unpicklable":
        raise HoldsALock("a lock cannot travel")
    raise NeedsTwoArguments(7, "cannot be rebuilt")


def endless(shard: Shard = Shard(0, 1)) -> Iterator[dict[str, Any]]:
    """Yield numbered batches forever, each also carrying the worker's process id."""
    number = 0
    while True:
        yield {"shard": [shard.index], "number": [number], "pid": [os.getpid()]}
        number += 1


def arrays(shard: Shard, count: int) -> Iterator[dict[str, Any]]:
    """Yield batches of large arrays of several layouts and dtypes whose values encode the batch number."""
    for number in shard.select(range(count)):
        base = np.arange(300 * 400, dtype=np.float64).reshape(300, 400) + number
        structured = np.zeros(5000, dtype=[("x", np.int32), ("y", np.float32)])
        structured["x"] = number
        yield {
            "c_order": base,
            "f_order": np.asfortranarray(base),
            "strided": base[::2, ::3],
            "structured": structured,
            "objects": np.array([f"label {number}", None], dtype=object),
            "small": np.array([number], dtype=np.int16),
            "listed": [base[:100] * 2, number],
        }


def big(shard: Shard, nbytes_each: int, count: int) -> Iterator[dict[str, Any]]:
    """Yield ``count`` batches of one float32 array of ``nbytes_each`` bytes filled with the batch number."""
    for number in shard.select(range(count)):
        yield {"x": np.full(nbytes_each // 4, number, dtype=np.float32)}


def exiting(shard: Shard = Shard(0, 1)) -> Iterator[dict[str, Any]]:
    """Yield one batch, then end the worker process abruptly with status 3, as a crash would."""
    yield {"shard": [shard.index]}
    os._exit(3)


def selected(shard: Shard = Shard(0, 1), length: int = 10) -> Iterator[dict[str, Any]]:
    """Yield batch ``i`` for each ``i`` of ``shard.select(range(length))``, naming the pass."""
    for number in shard.select(range(length)):
        yield {"number": [number], "epoch": [shard.epoch]}
