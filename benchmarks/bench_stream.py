"""Measure StreamWrapper: producer/consumer overlap, per-batch overhead and large numpy batches.

Run with ``python benchmarks/bench_stream.py``; every figure is the median of several runs in this process.
The targets come from issue 3; ``emloop 0.2.1`` and ``torch DataLoader`` figures are quoted from it.
"""

from __future__ import annotations

import itertools
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from emloop_ds import StreamWrapper
from emloop_ds.core.throughput import measure_stream

RUNS = 5
OVERLAP_BATCHES = 200
WORK_S = 0.005
OVERHEAD_BATCHES = 100_000
IMAGE_BATCHES = 3000
IMAGE_SHAPE = (64, 3, 224, 224)
BUFFER = 16


def median_seconds(run: Callable[[], object], runs: int = RUNS) -> float:
    """Return the median wall time of ``runs`` calls of ``run``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prefetch(iterable: Iterable[Any], size: int) -> Iterator[Any]:
    """Yield from ``iterable`` through a minimal thread + queue prefetcher: the reference for overhead."""
    items: queue.Queue[Any] = queue.Queue(size)
    end = object()

    def fill() -> None:
        for item in iterable:
            items.put(item)
        items.put(end)

    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    while (item := items.get()) is not end:
        yield item
    thread.join()


def consume_wrapper(stream_fn: Callable[[], Iterable[Any]], **options: Any) -> int:
    """Read one epoch of a StreamWrapper doing nothing with the batches; return their number."""
    count = 0
    with StreamWrapper(stream_fn, "bench", **options) as stream:
        for _ in stream:
            count += 1
    return count


# --- overlap: each side releases the GIL for WORK_S per batch -------------------------------------
# The ideal is measured in the same run (MEASUREMENTS.md): the producer reports how long each batch kept
# it busy and the reader times its own work; wall time over the larger busy sum is the overlap.


def slow_producer() -> Iterator[dict[str, list[float]]]:
    for _ in range(OVERLAP_BATCHES):
        start = time.perf_counter()
        time.sleep(WORK_S)
        yield {"busy_s": [time.perf_counter() - start]}


def overlap_ratio(**options: Any) -> float:
    """Read ``slow_producer`` with WORK_S of reader work in allow_buffering; return wall / larger busy sum."""
    producer_busy = reader_busy = 0.0
    start = time.perf_counter()
    with StreamWrapper(slow_producer, "bench", buffer=BUFFER, **options) as stream:
        for batch in stream:
            producer_busy += batch["busy_s"][0]
            with stream.allow_buffering:
                work_start = time.perf_counter()
                time.sleep(WORK_S)
                reader_busy += time.perf_counter() - work_start
    return (time.perf_counter() - start) / max(producer_busy, reader_busy)


def bench_overlap() -> list[tuple[str, str, str]]:
    variants = {"gated (default)": {}, "eager": {"eager": True}}
    ratios: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(RUNS):  # interleaved, so that drifts of the CPU speed hit both alike
        for label, options in variants.items():
            ratios[label].append(overlap_ratio(**options))
    rows = []
    for label, values in ratios.items():
        ratio = statistics.median(values)
        verdict = "met" if ratio <= 1.05 else "MISSED"
        spread = f"{min(values):.3f}-{max(values):.3f}"
        rows.append((f"StreamWrapper {label}", f"{ratio:.3f}x ({spread})", f"target <=1.05x {verdict}"))
    rows.append(("emloop 0.2.1 (issue)", "4.9x", ""))
    rows.append(("torch DataLoader, 1 worker (issue)", "1.09x", ""))
    return rows


# --- per-batch overhead: trivial producer and consumer ---------------------------------------------


def trivial_stream() -> Iterator[dict[str, list[int]]]:
    return itertools.repeat({"i": [0]}, OVERHEAD_BATCHES)


def drain(iterable: Iterable[Any]) -> None:
    for _ in iterable:
        pass


def bench_overhead() -> list[tuple[str, str, str]]:
    def per_batch_us(run: Callable[[], object]) -> float:
        return median_seconds(run) / OVERHEAD_BATCHES * 1e6

    plain = per_batch_us(lambda: drain(trivial_stream()))
    reference = per_batch_us(lambda: drain(prefetch(trivial_stream(), BUFFER)))
    eager = per_batch_us(lambda: consume_wrapper(trivial_stream, buffer=BUFFER, eager=True))
    gated = per_batch_us(lambda: consume_wrapper(trivial_stream, buffer=BUFFER))
    unbuffered = per_batch_us(lambda: drain(StreamWrapper(trivial_stream, "bench")))
    measured = per_batch_us(lambda: measure_stream(trivial_stream, "bench"))
    eager_verdict = "met" if eager <= 2 * reference else "MISSED"
    return [
        ("plain loop", f"{plain:.2f} us/batch", ""),
        ("thread+queue prefetcher", f"{reference:.2f} us/batch", "reference"),
        (
            "StreamWrapper eager",
            f"{eager:.2f} us/batch",
            f"{eager / reference:.2f}x ref, <=2x {eager_verdict}",
        ),
        (
            "StreamWrapper gated (default)",
            f"{gated:.2f} us/batch",
            f"{gated / reference:.2f}x ref; awaited batches made by the reader (NOTE [buffer inline])",
        ),
        ("StreamWrapper unbuffered", f"{unbuffered:.2f} us/batch", f"+{unbuffered - plain:.2f} us vs plain"),
        (
            "emloop dataset stream's loop",
            f"{measured:.2f} us/batch",
            f"+{measured - unbuffered:.2f} us vs unbuffered: timing, tally, wait sketch",
        ),
    ]


# --- 38 MB numpy batches: buffering hands over the same arrays -----------------------------------


def bench_images() -> list[tuple[str, str, str]]:
    pool = [np.ones(IMAGE_SHAPE, dtype=np.float32) for _ in range(BUFFER + 2)]

    def images() -> Iterator[dict[str, np.ndarray]]:
        for n in range(IMAGE_BATCHES):
            yield {"images": pool[n % len(pool)]}

    def read_all(**options: Any) -> None:
        stream = StreamWrapper(images, "bench", **options)
        with stream:
            for n, batch in enumerate(stream):
                if batch["images"] is not pool[n % len(pool)]:
                    raise AssertionError("a batch's array was copied")

    copy_rate = 1 / median_seconds(pool[0].copy)
    rows = [("one copy of a batch, for scale", f"{copy_rate:,.0f} copies/s", "what copying would cap at")]
    for label, options in (
        ("unbuffered", {}),
        ("gated (default)", {"buffer": BUFFER}),
        ("eager", {"buffer": BUFFER, "eager": True}),
    ):
        rate = IMAGE_BATCHES / median_seconds(lambda o=options: read_all(**o))
        rows.append((f"StreamWrapper {label}", f"{rate:,.0f} batches/s", "no copy: identity checked"))
    return rows


def print_section(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    for label, value, note in rows:
        print(f"  {label:<36} {value:<22} {note}")


def main() -> None:
    """Run every benchmark and print the figures side by side."""
    start = time.perf_counter()
    print_section(
        f"overlap: {OVERLAP_BATCHES} batches, {WORK_S * 1e3:.0f} ms GIL-free work per side, buffer {BUFFER}; "
        "wall time / the larger side's busy time in the same run",
        bench_overlap(),
    )
    print_section(f"per-batch overhead: trivial producer and consumer, buffer {BUFFER}", bench_overhead())
    print_section(
        f"numpy batches {'x'.join(map(str, IMAGE_SHAPE))} float32 (38.5 MB), buffer {BUFFER}", bench_images()
    )
    print(f"\nmedians of {RUNS} runs; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
