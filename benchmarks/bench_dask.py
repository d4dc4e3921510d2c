"""Measure the Dask engine on a LocalCluster: speed-up of a GIL-bound producer, start-up, overhead, MB/s.

Run with ``python benchmarks/bench_dask.py`` (needs ``pip install 'emloop-ds[dask]'``). Every figure is
the median of 5 runs in this process; the targets come from issue 10. The producer reports its own busy
time with each batch, so the speed-up is measured against the ideal of the same run (MEASUREMENTS.md).

Until the merge logic of issue 8 is on main, a small driver here plays the reader's side of the shard
protocol: round-robin over the shards, ``BUFFER`` credits per shard, one more per batch received.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from emloop_ds.core.stream.dask import DaskEngine
from emloop_ds.core.stream.engine import ShardEnd, ShardFailure, StreamSpec
from emloop_ds.core.stream.shard import Shard

RUNS = 5
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


def read_epoch(engine: DaskEngine, epoch: int, buffer: int) -> list[Any]:
    """Read one pass of every shard round-robin, as the ordered merge does; return the batches."""
    batches = []
    live = list(range(engine.shard_count))
    for shard in live:
        engine.start_pass(shard, epoch)
        engine.grant(shard, buffer)
    while live:
        for shard in list(live):
            _, item = engine.receive(shard)
            if isinstance(item, ShardFailure):
                raise RuntimeError(f"shard {shard} failed on {item.where}") from item.error
            if isinstance(item, ShardEnd):
                live.remove(shard)
            else:
                batches.append(item)
                engine.grant(shard, 1)
    return batches


def spec_of(stream: Any, *arguments: int) -> StreamSpec:
    return StreamSpec(stream.__name__, function=functools.partial(stream, *arguments))


def measure_speedup() -> None:
    engine = DaskEngine(spec_of(spin_stream, SPIN_BATCHES, calibrate_spin()), WORKERS)
    try:
        read_epoch(engine, 0, 2)  # warm: the workers import and unpickle the stream
        ratios = []
        for epoch in range(1, RUNS + 1):
            start = time.perf_counter()
            batches = read_epoch(engine, epoch, 2)
            wall = time.perf_counter() - start
            ratios.append(sum(batch["busy_s"][0] for batch in batches) / wall)
    finally:
        engine.close()
    print(
        f"GIL-bound producer {SPIN_S * 1000:g} ms/batch, {WORKERS} workers, {SPIN_BATCHES} batches, warm: "
        f"producers' busy / wall = {statistics.median(ratios):.2f}x (target >= 1.6x; "
        f"runs {', '.join(f'{ratio:.2f}' for ratio in ratios)})"
    )


def measure_first_batch() -> None:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        engine = DaskEngine(spec_of(trivial_stream, 10), WORKERS)
        try:
            engine.start_pass(0, 0)
            engine.grant(0, 1)
            engine.receive(0)
            times.append(time.perf_counter() - start)
        finally:
            engine.close()
    print(
        f"constructing the engine to the first batch, LocalCluster of {WORKERS} started: "
        f"{statistics.median(times):.2f} s (target <= 2 s; runs {', '.join(f'{t:.2f}' for t in times)})"
    )


def measure_in_process() -> None:
    """Time the same trivial and 4 MB streams read in the reader's process, unbuffered and buffered."""
    from emloop_ds import StreamWrapper

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


def print_transfer(label: str, trivial_walls: list[float], large_walls: list[float]) -> None:
    trivial_us = statistics.median(trivial_walls) / TRIVIAL_BATCHES * 1e6
    large_mb_s = LARGE_BATCHES * LARGE_BYTES / statistics.median(large_walls) / 1e6
    print(f"{label:<34} trivial batches {trivial_us:7.1f} us/batch   {LARGE_BYTES >> 20} MB batches "
          f"{large_mb_s:7.0f} MB/s")  # fmt: skip


def measure_transfer() -> None:
    engines = {
        "trivial": DaskEngine(spec_of(trivial_stream, TRIVIAL_BATCHES), WORKERS),
        "large": DaskEngine(spec_of(large_stream, LARGE_BATCHES), WORKERS),
    }
    try:
        for engine in engines.values():
            read_epoch(engine, 0, 2)
        results: dict[tuple[str, int], list[float]] = {}
        for run in range(RUNS):  # interleave the variants
            for buffer in (2, 16):
                for name, engine in engines.items():
                    start = time.perf_counter()
                    read_epoch(engine, run + 1, buffer)
                    results.setdefault((name, buffer), []).append(time.perf_counter() - start)
    finally:
        for engine in engines.values():
            engine.close()
    for buffer in (2, 16):
        label = f"Dask, {WORKERS} workers, buffer {buffer}"
        print_transfer(label, results[("trivial", buffer)], results[("large", buffer)])
    print("worker-process engine: not on main yet, measured by benchmarks/bench_workers.py once it is")


def main() -> None:
    measure_speedup()
    measure_first_batch()
    measure_in_process()
    measure_transfer()


if __name__ == "__main__":
    main()
