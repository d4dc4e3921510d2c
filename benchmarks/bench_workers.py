"""Measure StreamWrapper with worker processes, side by side with torch's DataLoader when torch is installed.

Run with ``python benchmarks/bench_workers.py``. This host's CPU speed drifts within seconds, so every
ideal is measured in the run itself (``../shared/MEASUREMENTS.md``): each producer reports its busy time
with each batch and the reader times its own work. Each figure is the median of ``RUNS`` epochs, after a
warm-up epoch; the variants alternate epoch by epoch. Targets come from issue 8.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emloop_ds import Shard, StreamWrapper

RUNS = 5
GIL_BATCHES = 200
IMAGE_SHAPE = (64, 3, 224, 224)  # 38.5 MB of float32
IMAGE_BATCHES = 40
TRIVIAL_BATCHES = 10_000
IRIS_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "iris" / "config.yaml"


def spin(seconds: float) -> float:
    """Hold the GIL in a Python loop for ``seconds`` of wall time; return how long it took.

    A fixed number of iterations would take 60% longer or shorter as this host's CPU speed drifts.
    """
    start = now = time.perf_counter()
    while now - start < seconds:
        now = time.perf_counter()
    return now - start


def gil_stream(shard: Shard = Shard(0, 1), work_s: float = 0.005, count: int = GIL_BATCHES) -> Iterator[Any]:
    """Yield this shard's batches, each after ``work_s`` of GIL-bound work, with the time it took."""
    for _ in shard.select(range(count)):
        yield {"busy": [spin(work_s)]}


def image_stream(shard: Shard = Shard(0, 1), count: int = IMAGE_BATCHES) -> Iterator[Any]:
    """Yield a prepared 38.5 MB array as each of this shard's batches."""
    images = np.ones(IMAGE_SHAPE, dtype=np.float32)
    for _ in shard.select(range(count)):
        yield {"images": images}


def trivial_stream(shard: Shard = Shard(0, 1), count: int = TRIVIAL_BATCHES) -> Iterator[Any]:
    """Yield this shard's tiny batches."""
    for n in shard.select(range(count)):
        yield {"i": [n]}


class Epoch:
    """What reading one epoch took: wall time, producers' busy time, reader's busy time, batches."""

    def __init__(self, read: Iterable[Any], reader_work_s: float) -> None:
        self.producer_s = self.reader_s = 0.0
        self.batches = 0
        start = time.perf_counter()
        for batch in read:
            self.batches += 1
            if "busy" in batch:
                self.producer_s += float(batch["busy"][0])
            if reader_work_s:
                self.reader_s += spin(reader_work_s)
            del batch
        self.wall_s = time.perf_counter() - start


class Variant:
    """One way of reading a stream, warmed up once, then read epoch by epoch."""

    def __init__(
        self, name: str, start: Callable[[], Callable[[], Iterable[Any]]], close: Callable[[], None]
    ):
        self.name, self._read, self._close = name, start(), close
        self.epochs: list[Epoch] = []

    def run(self, reader_work_s: float, keep: bool = True) -> None:
        epoch = Epoch(self._read(), reader_work_s)
        if keep:
            self.epochs.append(epoch)

    def median(self, figure: Callable[[Epoch], float]) -> float:
        return statistics.median(figure(epoch) for epoch in self.epochs)

    def close(self) -> None:
        self._close()


def ours(stream_fn: Callable[..., Any], workers: int) -> Variant:
    wrapper = StreamWrapper(stream_fn, "bench", workers=workers)

    def start() -> Callable[[], Iterable[Any]]:
        wrapper.__enter__()
        return lambda: wrapper

    def close() -> None:
        wrapper.__exit__(None, None, None)
        wrapper.close()

    return Variant(f"emloop-ds, {workers} worker{'s' * (workers > 1)}", start, close)


def torch_loader(stream_fn: Callable[..., Any], workers: int) -> Variant | None:
    try:
        import torch.utils.data
    except ImportError:
        return None

    class Sharded(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
        def __iter__(self) -> Iterator[Any]:
            info = torch.utils.data.get_worker_info()
            shard = Shard(0, 1) if info is None else Shard(info.id, info.num_workers)
            return iter(stream_fn(shard))

    loader = torch.utils.data.DataLoader(
        Sharded(), batch_size=None, num_workers=workers, persistent_workers=True, prefetch_factor=2
    )
    return Variant(
        f"torch DataLoader, {workers} worker{'s' * (workers > 1)}", lambda: lambda: loader, lambda: None
    )


def compare(stream_fn: Callable[..., Any], workers: int, reader_work_s: float = 0.0) -> list[Variant]:
    """Warm up each variant with one epoch, then read RUNS epochs of each, alternating."""
    variants = [v for v in (ours(stream_fn, workers), torch_loader(stream_fn, workers)) if v is not None]
    try:
        for variant in variants:
            variant.run(reader_work_s, keep=False)
        for _ in range(RUNS):
            for variant in variants:
                variant.run(reader_work_s)
    finally:
        for variant in variants:
            variant.close()
    return variants


def row_overlap() -> list[str]:
    lines = []
    for v in compare(gil_stream, 1, reader_work_s=0.005):
        ratio = v.median(lambda e: e.wall_s / max(e.producer_s, e.reader_s))
        lines.append(
            f"  {v.name:<28} wall / max(busy) = {ratio:.3f}x" + _target(v, ratio <= 1.15, "<= 1.15x")
        )
    return lines


def row_speedup() -> list[str]:
    lines = []
    for v in compare(_Partial(gil_stream, work_s=0.010), 2):
        speedup = v.median(lambda e: e.producer_s / e.wall_s)
        lines.append(
            f"  {v.name:<28} producers' busy / wall = {speedup:.2f}x" + _target(v, speedup >= 1.8, ">= 1.8x")
        )
    return lines


def row_images() -> list[str]:
    nbytes = int(np.prod(IMAGE_SHAPE)) * 4
    lines = []
    for v in compare(image_stream, 1):
        rate = v.median(lambda e: e.batches * nbytes / e.wall_s / 1e9)
        lines.append(f"  {v.name:<28} {rate:.2f} GB/s" + _target(v, rate >= 5.0, ">= 5 GB/s"))
    return lines


def row_overhead() -> list[str]:
    return [
        f"  {v.name:<28} {v.median(lambda e: e.wall_s / e.batches * 1e6):.1f} us/batch"
        for v in compare(trivial_stream, 2)
    ]


def row_first_batch() -> list[str]:
    from emloop_ds.core.config import load_config
    from emloop_ds.core.factory import create_dataset

    lines = []
    for which in ("first", "second"):
        start = time.perf_counter()
        dataset = create_dataset(load_config(IRIS_CONFIG))
        wrapper = StreamWrapper(dataset.train_stream, "train", workers=2)
        with wrapper:
            next(wrapper)
            seconds = time.perf_counter() - start
        wrapper.close()
        verdict = "" if which == "second" else f"  target <= 1 s {'met' if seconds <= 1 else 'MISSED'}"
        lines.append(f"  {which} wrapper of the process: {seconds * 1e3:.0f} ms{verdict}")
    return lines


class _Partial:
    """A picklable stream function with fixed keyword arguments (a lambda cannot reach the workers)."""

    def __init__(self, function: Callable[..., Any], **kwargs: Any) -> None:
        self.function, self.kwargs = function, kwargs

    def __call__(self, shard: Shard = Shard(0, 1)) -> Any:
        return self.function(shard, **self.kwargs)


def _target(variant: Variant, is_met: bool, target: str) -> str:
    if variant.name.startswith("torch"):
        return ""
    return f"  target {target} {'met' if is_met else 'MISSED'}"


def main() -> None:
    sections = (
        ("Iris, 2 workers: time from constructing the wrapper to its first batch", row_first_batch),
        ("GIL-bound producer 5 ms/batch and reader 5 ms/batch, 200 batches, 1 worker", row_overlap),
        ("GIL-bound producer 10 ms/batch, trivial reader, 200 batches, 2 workers", row_speedup),
        (f"38.5 MB float32 batches, {IMAGE_BATCHES} per epoch, 1 worker", row_images),
        (f"trivial batches, {TRIVIAL_BATCHES} per epoch, 2 workers: per-batch overhead", row_overhead),
    )
    print(f"medians of {RUNS} epochs after a warm-up epoch")
    for title, measure in sections:
        print(title, flush=True)
        for line in measure():
            print(line, flush=True)


if __name__ == "__main__":
    main()
