"""Measure the Dask engine on a LocalCluster: speed-up of a GIL-bound producer, start-up, overhead, MB/s.

Run with ``python benchmarks/bench_dask.py`` (needs ``pip install 'emloop-ds[dask]'``). Every figure is
the median of 5 runs in this process; the targets come from issue 10. The producer reports its own busy
time with each batch, so the speed-up is measured against the ideal of the same run (MEASUREMENTS.md).

Every figure is measured through ``StreamWrapper(..., workers=2)`` with ``engine="dask"`` (a LocalCluster
started by the wrapper) beside ``engine="processes"``, the variants interleaved run by run.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from emloop_ds import Shard, StreamWrapper

RUNS = 5
ENGINES = ("dask", "processes")
WORKERS = 2
SPIN_BATCHES = 400
SPIN_S = 0.010
TRIVIAL_BATCHES = 4000
LARGE_BATCHES = 200
LARGE_BYTES = 4 * 2**20


def spin(iterations: int) -> int:
    """Do ``iterations`` steps of pure-Python work, holding the GIL."""
    total = 0
    for step in range(iterations):
        total += step & 7
    return total


def calibrate_spin() -> int:
    """Return the iterations of ``spin`` that take about SPIN_S here and now (the median of 5 tries)."""
    probe = 100_000
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        spin(probe)
        times.append(time.perf_counter() - start)
    return int(probe * SPIN_S / statistics.median(times))


def spin_stream(batches: int, iterations: int, shard: Shard) -> Iterator[dict[str, list[float]]]:
    """Yield this shard's part of ``batches`` batches, each after a fixed amount of GIL-bound work, with
    the time that work took (the producer's busy time)."""
    for _ in shard.select(range(batches)):
        start = time.perf_counter()
        spin(iterations)
        yield {"busy_s": [time.perf_counter() - start]}


def trivial_stream(batches: int, shard: Shard) -> Iterator[dict[str, list[int]]]:
    """Yield this shard's part of ``batches`` one-number batches."""
    for index in shard.select(range(batches)):
        yield {"i": [index]}


def large_stream(batches: int, shard: Shard) -> Iterator[dict[str, Any]]:
    """Yield this shard's part of ``batches`` batches of one prepared LARGE_BYTES float32 array."""
    array = np.ones(LARGE_BYTES // 4, dtype=np.float32)
    for _ in shard.select(range(batches)):
        yield {"x": array}


def read_epoch(wrapper: StreamWrapper) -> float:
    """Read one epoch of a wrapper that is inside ``with``; return the producers' summed busy time.

    Each batch is dropped once read, as a training loop does, so that the worker-process engine can reuse
    its shared-memory slots (a reader that keeps every batch makes it map fresh memory for each one).
    """
    return sum(batch["busy_s"][0] for batch in wrapper if "busy_s" in batch)


def wrapper_of(stream: Any, *arguments: int, engine: str = "dask", buffer: int = 2) -> StreamWrapper:
    """Return a StreamWrapper running ``stream`` on WORKERS shards with ``engine``."""
    stream_fn = functools.partial(stream, *arguments)
    return StreamWrapper(stream_fn, "bench", workers=WORKERS, engine=engine, buffer_size=buffer)  # type: ignore[call-overload]


def measure_speedup() -> None:
    iterations = calibrate_spin()
    wrappers = {
        engine: wrapper_of(spin_stream, SPIN_BATCHES, iterations, engine=engine) for engine in ENGINES
    }
    ratios: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    try:
        for wrapper in wrappers.values():
            wrapper.__enter__()
            read_epoch(wrapper)  # warm: the workers import and unpickle the stream
        for _ in range(RUNS):  # interleave the engines
            for engine, wrapper in wrappers.items():
                start = time.perf_counter()
                busy = read_epoch(wrapper)
                wall = time.perf_counter() - start
                ratios[engine].append(busy / wall)
    finally:
        for wrapper in wrappers.values():
            wrapper.close()
    for engine in ENGINES:
        print(
            f"GIL-bound producer {SPIN_S * 1000:g} ms/batch, {WORKERS} workers, {SPIN_BATCHES} batches, "
            f"warm, {engine}: producers' busy / wall = {statistics.median(ratios[engine]):.2f}x "
            f"(target >= 1.6x for dask; runs {', '.join(f'{ratio:.2f}' for ratio in ratios[engine])})"
        )


def measure_first_batch() -> None:
    times: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    for _ in range(RUNS):
        for engine in ENGINES:
            start = time.perf_counter()
            wrapper = wrapper_of(trivial_stream, 10, engine=engine)
            try:
                with wrapper:
                    next(wrapper)
                    times[engine].append(time.perf_counter() - start)
            finally:
                wrapper.close()
    for engine in ENGINES:
        print(
            f"constructing the wrapper to the first batch, {engine} with {WORKERS} workers started: "
            f"{statistics.median(times[engine]):.2f} s (target <= 2 s for dask; "
            f"runs {', '.join(f'{t:.2f}' for t in times[engine])})"
        )


def measure_in_process() -> None:
    """Time the same trivial stream read in the reader's process, unbuffered and buffered."""
    results: dict[int, list[float]] = {}
    stream_fn = functools.partial(trivial_stream, TRIVIAL_BATCHES, shard=Shard(0, 1))
    for _ in range(RUNS):
        for buffer in (0, 16):
            with StreamWrapper(stream_fn, "bench", buffer_size=buffer, eager=buffer > 0) as stream:
                start = time.perf_counter()
                for _batch in stream:
                    pass
                results.setdefault(buffer, []).append(time.perf_counter() - start)
    for buffer, label in ((0, "in-process, no buffer"), (16, "in-process, thread buffer 16")):
        trivial_us = statistics.median(results[buffer]) / TRIVIAL_BATCHES * 1e6
        print(f"{label:<34} trivial batches {trivial_us:7.1f} us/batch   (arrays are passed, not copied)")


def measure_transfer() -> None:
    variants = [(engine, buffer) for engine in ENGINES for buffer in (2, 16)]
    wrappers = {
        (engine, buffer, name): wrapper_of(stream, batches, engine=engine, buffer=buffer)
        for engine, buffer in variants
        for name, stream, batches in (
            ("trivial", trivial_stream, TRIVIAL_BATCHES),
            ("large", large_stream, LARGE_BATCHES),
        )
    }
    results: dict[tuple[str, int, str], list[float]] = {key: [] for key in wrappers}
    try:
        for wrapper in wrappers.values():
            wrapper.__enter__()
            read_epoch(wrapper)
        for _ in range(RUNS):  # interleave the variants
            for key, wrapper in wrappers.items():
                start = time.perf_counter()
                read_epoch(wrapper)
                results[key].append(time.perf_counter() - start)
    finally:
        for wrapper in wrappers.values():
            wrapper.close()
    for engine, buffer in variants:
        trivial_us = statistics.median(results[(engine, buffer, "trivial")]) / TRIVIAL_BATCHES * 1e6
        large_mb_s = LARGE_BATCHES * LARGE_BYTES / statistics.median(results[(engine, buffer, "large")]) / 1e6
        label = f"{engine}, {WORKERS} workers, buffer {buffer}"
        print(
            f"{label:<34} trivial batches {trivial_us:7.1f} us/batch"
            f"   {LARGE_BYTES >> 20} MB batches {large_mb_s:7.0f} MB/s"
        )


def main() -> None:
    measure_speedup()
    measure_first_batch()
    measure_in_process()
    measure_transfer()


if __name__ == "__main__":
    main()
