"""Measure the stream cache (issue 14): replay in order and shuffled against a numpy memory map, the cost
of writing through, large float32 batches and the time to a first batch.

Run with ``python benchmarks/bench_cache.py``; every figure is the median of 5 runs in this process. The
reader copies each array once into a buffer it owns (``np.copyto``), so every variant moves the bytes.
Hugging Face ``datasets`` rows are added when it is installed (``pip install datasets``; a peer, never a
dependency), as a comparison only. Write-through is compared with a numpy memory map written in the same
pass (its floor), and ``emloop dataset cache --workers 2`` with ``emloop dataset stream --workers 2`` (the
engine's own speed-up on this workload, start-up included); variants are interleaved.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emloop_ds.core.cache import CacheReader, CacheWriter

RUNS = 5
BATCHES = 256
BATCH = 32
IMAGE = (3, 64, 64)
WORK_S = 0.005
LARGE_SHAPE = (64, 3, 224, 224)  # 38.5 MB of float32 per batch
LARGE_BATCHES = 16


def median_seconds(run: Callable[[], object], runs: int = RUNS) -> float:
    """Return the median wall time of ``runs`` calls of ``run``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def busy(seconds: float) -> None:
    """Hold the GIL for ``seconds`` of pure Python work, as a decoding step would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Workload:
    """Hold the issue's examples: 256 batches of 32 uint8 images plus int64 labels."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (BATCHES * BATCH, *IMAGE), dtype=np.uint8)
        self.labels = np.arange(BATCHES * BATCH, dtype=np.int64)
        self.bytes = self.images.nbytes + self.labels.nbytes
        self.out_images = np.empty((BATCH, *IMAGE), np.uint8)
        self.out_labels = np.empty(BATCH, np.int64)

    def stream(self) -> Iterator[dict[str, Any]]:
        """Yield the batches, each after 5 ms of GIL-bound work."""
        for number in range(BATCHES):
            busy(WORK_S)
            rows = slice(number * BATCH, (number + 1) * BATCH)
            yield {"images": self.images[rows].copy(), "labels": self.labels[rows].copy()}

    def consume(self, batch: Any) -> None:
        """Copy a batch's arrays into buffers the reader owns."""
        images, labels = batch["images"], batch["labels"]
        out_images = self.out_images if len(images) == BATCH else np.empty_like(images)
        out_labels = self.out_labels if len(labels) == BATCH else np.empty_like(labels)
        np.copyto(out_images, images)
        np.copyto(out_labels, labels)


def memmap_files(work: Workload, folder: Path) -> tuple[np.memmap[Any, Any], np.memmap[Any, Any]]:
    """Write the examples into two ``.npy`` memory maps, the floor's layout."""
    images = np.lib.format.open_memmap(folder / "images.npy", "w+", np.uint8, work.images.shape)
    labels = np.lib.format.open_memmap(folder / "labels.npy", "w+", np.int64, work.labels.shape)
    images[:] = work.images
    labels[:] = work.labels
    images.flush()
    labels.flush()
    del images, labels
    return np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "labels.npy", mmap_mode="r")


def write_cache(path: Path, stream: Iterator[dict[str, Any]], consume: Callable[[Any], None] | None) -> None:
    """Write ``stream`` through into a cache at ``path``, handing each batch to ``consume`` as it passes."""
    shutil.rmtree(path, ignore_errors=True)
    with CacheWriter(path, fingerprint="bench", description="bench_cache") as writer:
        for batch in stream:
            if consume is not None:
                consume(batch)
            writer.append(batch)
        writer.seal()


def main() -> None:
    """Run every measure and print the table."""
    work = Workload()
    rows: list[tuple[str, str, str]] = []
    folder = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        images_mm, labels_mm = memmap_files(work, folder)
        cache = folder / "cache"

        def source_pass() -> None:
            for batch in work.stream():
                work.consume(batch)

        def memmap_written() -> None:
            images = np.lib.format.open_memmap(folder / "w-images.npy", "w+", np.uint8, work.images.shape)
            labels = np.lib.format.open_memmap(folder / "w-labels.npy", "w+", np.int64, work.labels.shape)
            for number, batch in enumerate(work.stream()):
                work.consume(batch)
                images[number * BATCH : (number + 1) * BATCH] = batch["images"]
                labels[number * BATCH : (number + 1) * BATCH] = batch["labels"]
            images.flush()
            labels.flush()

        # interleaved, so that a drift of the host's speed touches every variant alike
        timings: dict[str, list[float]] = {"source": [], "cache": [], "memmap": []}
        for _ in range(RUNS):
            for key, run in (
                ("source", source_pass),
                ("cache", lambda: write_cache(cache, work.stream(), work.consume)),
                ("memmap", memmap_written),
            ):
                timings[key].append(median_seconds(run, runs=1))
        source_s, build_s, memmap_s = (
            statistics.median(timings[key]) for key in ("source", "cache", "memmap")
        )
        rows.append(("source pass, no cache", f"{source_s:.2f} s", ""))
        rows.append(
            (
                "numpy memmap written through (floor)",
                f"{memmap_s:.2f} s",
                f"{memmap_s / source_s:.2f}x source",
            )
        )
        rows.append(
            ("write-through first pass", f"{build_s:.2f} s", f"{build_s / source_s:.2f}x source (<= 1.15)")
        )

        def memmap_in_order() -> None:
            for start in range(0, len(work.labels), BATCH):
                work.consume(
                    {"images": images_mm[start : start + BATCH], "labels": labels_mm[start : start + BATCH]}
                )

        permutation = np.random.default_rng(1).permutation(len(work.labels))

        def memmap_gather() -> None:
            for start in range(0, len(permutation), BATCH):
                rows_ = np.sort(permutation[start : start + BATCH])
                work.consume({"images": images_mm[rows_], "labels": labels_mm[rows_]})

        reader = CacheReader.open(cache)

        def cache_in_order() -> None:
            for batch in reader.batches():
                work.consume(batch)

        passes = iter(range(10**6))

        def cache_shuffled() -> None:
            for batch in reader.shuffled_batches(next(passes)):
                work.consume(batch)

        for warm in (memmap_in_order, memmap_gather, cache_in_order, cache_shuffled):
            warm()
        floor = work.bytes / median_seconds(memmap_in_order) / 1e9
        gather_floor = work.bytes / median_seconds(memmap_gather) / 1e9
        in_order = work.bytes / median_seconds(cache_in_order) / 1e9
        shuffled = work.bytes / median_seconds(cache_shuffled) / 1e9
        rows.append(("numpy memmap in order (floor)", f"{floor:.2f} GB/s", ""))
        rows.append(("cache in order", f"{in_order:.2f} GB/s", f"{in_order / floor:.2f}x floor (>= 0.7)"))
        rows.append(("numpy memmap random gather (floor)", f"{gather_floor:.2f} GB/s", ""))
        rows.append(
            ("cache shuffled", f"{shuffled:.2f} GB/s", f"{shuffled / gather_floor:.2f}x floor (>= 0.6)")
        )
        reader.close()

        def open_first() -> None:
            with CacheReader.open(cache) as opened:
                work.consume(next(opened.batches()))

        rows.append(("open to first batch", f"{median_seconds(open_first) * 1000:.1f} ms", "<= 50 ms"))

        large = np.random.default_rng(2).random(LARGE_SHAPE, dtype=np.float32)
        large_cache = folder / "large"
        write_cache(large_cache, ({"x": large} for _ in range(LARGE_BATCHES)), None)
        out = np.empty_like(large)
        with CacheReader.open(large_cache) as large_reader:

            def large_in_order() -> None:
                for batch in large_reader.batches():
                    np.copyto(out, batch["x"])

            large_in_order()
            large_rate = large.nbytes * LARGE_BATCHES / median_seconds(large_in_order) / 1e9
        rows.append(("38.5 MB float32 batches in order", f"{large_rate:.2f} GB/s", ">= 5 GB/s"))
        rows.extend(wrapper_rows(work, folder, source_s, in_order))
        rows.extend(command_rows(folder))
        rows.extend(hf_rows(work, folder, source_s, in_order, shuffled))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'figure':>12}  vs target")
    for name, figure, target in rows:
        print(f"{name:<{width}}  {figure:>12}  {target}")


def wrapper_rows(
    work: Workload, folder: Path, source_s: float, in_order: float
) -> list[tuple[str, str, str]]:
    """Return the rows of ``StreamWrapper(cache=DIR)``: its write-through pass and its cached passes."""
    from emloop_ds import StreamWrapper

    def plain_pass() -> None:
        for batch in StreamWrapper(work.stream, "bench"):
            work.consume(batch)

    def written_pass() -> None:
        shutil.rmtree(folder / "wrapper", ignore_errors=True)
        wrapper = StreamWrapper(work.stream, "bench", cache=folder / "wrapper")
        for batch in wrapper:
            work.consume(batch)
        wrapper.close()

    plain_s = median_seconds(plain_pass)
    written_s = median_seconds(written_pass)
    cached = StreamWrapper(work.stream, "bench", cache=folder / "wrapper", shuffle=True)
    assert cached.cache_mode == "read"

    def cached_pass() -> None:
        for batch in cached:
            work.consume(batch)

    cached_pass()
    shuffled = work.bytes / median_seconds(cached_pass) / 1e9
    ordered = StreamWrapper(work.stream, "bench", cache=folder / "wrapper")

    def ordered_pass() -> None:
        for batch in ordered:
            work.consume(batch)

    ordered_pass()
    ordered_rate = work.bytes / median_seconds(ordered_pass) / 1e9
    return [
        ("StreamWrapper, no cache", f"{plain_s:.2f} s", f"{plain_s / source_s:.2f}x source pass"),
        (
            "StreamWrapper(cache=DIR) first pass",
            f"{written_s:.2f} s",
            f"{written_s / plain_s:.2f}x no cache (<= 1.15)",
        ),
        (
            "StreamWrapper cached pass in order",
            f"{ordered_rate:.2f} GB/s",
            f"{ordered_rate / in_order:.2f}x reader",
        ),
        ("StreamWrapper cached pass shuffled", f"{shuffled:.2f} GB/s", ""),
    ]


COMMAND_DATASET = """
import time

import numpy as np

from emloop_ds import BaseDataset, Shard


class Images(BaseDataset):
    def _configure_dataset(self, output_dir, batches=256):
        self.batches = batches

    def train_stream(self, shard=Shard(0, 1)):
        rng = np.random.default_rng(0)
        for number in shard.select(range(self.batches)):
            end = time.perf_counter() + 0.005  # GIL-bound decoding
            while time.perf_counter() < end:
                pass
            yield {
                "images": np.full((32, 3, 64, 64), number % 256, np.uint8),
                "labels": np.arange(number * 32, number * 32 + 32, dtype=np.int64),
            }
"""


def command_rows(folder: Path) -> list[tuple[str, str, str]]:
    """Return ``emloop dataset cache --workers 2`` beside ``--workers 0``, and ``stream`` the same way."""
    import subprocess
    import sys

    (folder / "bench_images.py").write_text(COMMAND_DATASET, encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text("dataset:\n  class: bench_images.Images\n", encoding="utf-8")
    emloop = str(Path(sys.executable).parent / "emloop")

    def command(name: str, workers: int) -> Callable[[], object]:
        argv = [emloop, "dataset", name, str(config), "--workers", str(workers)]
        if name == "cache":
            argv += ["--force", "--cache-dir", str(folder / "command")]
        return lambda: subprocess.run(argv, check=True, cwd=folder, capture_output=True)

    timings: dict[tuple[str, int], list[float]] = {}
    for _ in range(RUNS):  # interleaved
        for name in ("cache", "stream"):
            for workers in (0, 2):
                timings.setdefault((name, workers), []).append(median_seconds(command(name, workers), runs=1))
    cache_0, cache_2, stream_0, stream_2 = (
        statistics.median(timings[key]) for key in (("cache", 0), ("cache", 2), ("stream", 0), ("stream", 2))
    )
    return [
        ("emloop dataset cache --workers 0", f"{cache_0:.2f} s", ""),
        (
            "emloop dataset cache --workers 2",
            f"{cache_2:.2f} s",
            f"{cache_2 / cache_0:.2f}x --workers 0 (<= 0.6)",
        ),
        ("emloop dataset stream --workers 0", f"{stream_0:.2f} s", "no cache"),
        (
            "emloop dataset stream --workers 2 (floor)",
            f"{stream_2:.2f} s",
            f"{stream_2 / stream_0:.2f}x --workers 0, no cache",
        ),
    ]


def hf_rows(
    work: Workload, folder: Path, source_s: float, in_order: float, shuffled: float
) -> list[tuple[str, str, str]]:
    """Return Hugging Face ``datasets`` rows, or one saying how to install it."""
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        return [("Hugging Face datasets", "skipped", "not installed: pip install datasets")]

    datasets.disable_progress_bars()
    features = datasets.Features(
        {"images": datasets.Array3D(shape=IMAGE, dtype="uint8"), "labels": datasets.Value("int64")}
    )

    def generate() -> Iterator[dict[str, Any]]:
        for batch in work.stream():
            for image, label in zip(batch["images"], batch["labels"], strict=True):
                yield {"images": image, "labels": label}

    built: list[Any] = []

    def build() -> None:
        built.append(
            datasets.Dataset.from_generator(
                generate, features=features, cache_dir=str(folder / "hf"), keep_in_memory=False
            )
        )

    build_s = median_seconds(build, runs=1)
    data = built[-1].with_format("numpy")

    def read(dataset: Any) -> None:
        # HF's numpy format hands out uint8 images as int64 (8x the bytes); each is copied into the reader's
        # uint8 buffer as for every other variant
        for batch in dataset.iter(batch_size=BATCH):
            images, labels = batch["images"], batch["labels"]
            np.copyto(work.out_images[: len(images)], images, casting="unsafe")
            np.copyto(work.out_labels[: len(labels)], labels)

    hf_in_order = work.bytes / median_seconds(lambda: read(data)) / 1e9
    hf_shuffled = work.bytes / median_seconds(lambda: read(data.shuffle(seed=0))) / 1e9
    return [
        ("HF from_generator build", f"{build_s:.2f} s", f"{build_s / source_s:.2f}x source pass"),
        ("HF in order", f"{hf_in_order:.2f} GB/s", f"cache is {in_order / hf_in_order:.0f}x (>= 10)"),
        ("HF shuffled", f"{hf_shuffled:.2f} GB/s", f"cache is {shuffled / hf_shuffled:.0f}x (>= 25)"),
    ]


if __name__ == "__main__":
    main()
