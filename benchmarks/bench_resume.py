"""Measure resume (issue 15): load_state_dict to the first batch deep into a long pass, and state_dict's cost.

Run with ``python benchmarks/bench_resume.py``; every figure is the median of 5. torchdata's
``StatefulDataLoader`` rows are added when torchdata is installed (``pip install torch torchdata``: peers,
never dependencies), as a comparison only. Each resumed first batch is checked to be the right one.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emloop_ds import Shard, StreamWrapper

RUNS = 5
BATCHES = 1_000_000
DEEP = 900_000
SHALLOW = 10


def numbered(shard: Shard = Shard(0, 1)) -> Iterator[dict[str, Any]]:
    """Yield batch ``n`` as ``{"n": [n]}`` for the shard's part of 1,000,000 batches, picked by select."""
    for number in shard.select(range(BATCHES)):
        yield {"n": [number]}


def median(run: Callable[[], object]) -> float:
    """Return the median wall time of ``RUNS`` calls of ``run``."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def state_at(wrapper: StreamWrapper, batch: int, pass_number: int = 0) -> dict[str, Any]:
    """Return the state ``wrapper`` would save after delivering ``batch`` batches of pass ``pass_number``.

    It is the wrapper's own fresh state with the positions moved: reading 900,000 batches to take it
    would measure the read, not the resume. With workers, shard ``i`` has delivered its share.
    """
    state = wrapper.state_dict()
    shards = len(state["shard_batches"])
    state.update(epoch=pass_number, batch=batch, pass_number=pass_number)
    state["shard_batches"] = [
        batch // shards + (1 if index < batch % shards else 0) for index in range(shards)
    ]
    state["turn"] = batch % shards
    return state


def resume_seconds(make: Callable[[], StreamWrapper], batch: int, expected: Callable[[Any], bool]) -> float:
    """Return the median time from load_state_dict to the first batch (inside ``with``), checked."""
    times = []
    for _ in range(RUNS):
        wrapper = make()
        state = state_at(wrapper, batch)
        start = time.perf_counter()
        wrapper.load_state_dict(state)
        with wrapper:
            first = next(wrapper)
            times.append(time.perf_counter() - start)
        wrapper.close()
        assert expected(first), first
    return statistics.median(times)


def fresh_seconds(make: Callable[[], StreamWrapper]) -> float:
    """Return the median time from a new wrapper's ``with`` to its first batch: the start-up alone."""

    def run() -> None:
        wrapper = make()
        with wrapper:
            next(wrapper)
        wrapper.close()

    return median(run)


def main() -> None:
    """Run every measure and print the table."""
    rows: list[tuple[str, str, str]] = []
    for workers in (0, 2):

        def make(workers: int = workers) -> StreamWrapper:
            return StreamWrapper(numbered, "numbered", workers=workers)

        startup = fresh_seconds(make) if workers else 0.0
        deep = resume_seconds(make, DEEP, lambda batch: batch["n"][0] == DEEP)
        shallow = resume_seconds(make, SHALLOW, lambda batch: batch["n"][0] == SHALLOW)
        where = "in-process" if workers == 0 else f"{workers} workers"
        target = "<= 0.1 s" if workers == 0 else f"<= 0.1 s + start-up {startup:.2f} s"
        rows.append((f"resume at {DEEP:,}, {where}", f"{deep * 1e3:.1f} ms", target))
        rows.append((f"resume at {SHALLOW}, {where}", f"{shallow * 1e3:.1f} ms", "the same as deep"))

    rows.extend(cached_rows())

    wrapper = StreamWrapper(numbered, "numbered", epoch_size=1000)
    for _ in range(5):
        next(wrapper)
    per_call = min(timeit.repeat(wrapper.state_dict, number=20_000, repeat=RUNS)) / 20_000
    rows.append(("state_dict() per call", f"{per_call * 1e6:.1f} µs", "<= 20 µs"))
    rows.extend(torchdata_rows())

    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'figure':>10}  vs target")
    for name, figure, target in rows:
        print(f"{name:<{width}}  {figure:>10}  {target}")


def cached_rows() -> list[tuple[str, str, str]]:
    """Return the resume of a cached, shuffled stream at batch 900,000 of a pass read from the cache."""
    from emloop_ds.core.cache import CacheReader

    folder = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        build = StreamWrapper(numbered, "numbered", cache=folder)
        started = time.perf_counter()
        for _ in build:  # writes the cache of 1,000,000 batches through
            pass
        build_s = time.perf_counter() - started
        build.close()
        with CacheReader.open(build.cache_path) as reader:  # type: ignore[arg-type]
            expected = int(np.sort(reader.pass_permutation(1)[DEEP : DEEP + 1])[0])

        def make() -> StreamWrapper:
            return StreamWrapper(numbered, "numbered", cache=folder, shuffle=True)

        times = []
        for _ in range(RUNS):
            wrapper = make()
            state = state_at(wrapper, DEEP, pass_number=1)
            start = time.perf_counter()
            wrapper.load_state_dict(state)
            first = next(wrapper)
            times.append(time.perf_counter() - start)
            wrapper.close()
            assert first["n"][0] == expected, (first, expected)
        return [
            (f"cache of {BATCHES:,} batches written through", f"{build_s:.1f} s", ""),
            (f"resume cached shuffled at {DEEP:,}", f"{statistics.median(times) * 1e3:.1f} ms", "<= 0.1 s"),
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def torchdata_rows() -> list[tuple[str, str, str]]:
    """Return torchdata StatefulDataLoader's resume at 900,000 of an iterable dataset, and its state_dict."""
    try:
        import torch.utils.data
        from torchdata.stateful_dataloader import StatefulDataLoader  # type: ignore
    except ImportError:
        return [("torchdata StatefulDataLoader", "skipped", "not installed: pip install torch torchdata")]

    class Numbered(torch.utils.data.IterableDataset[dict[str, list[int]]]):
        """The same stream for torch: an iterable dataset without its own state, as most are."""

        def __iter__(self) -> Iterator[dict[str, list[int]]]:
            info = torch.utils.data.get_worker_info()
            index, count = (info.id, info.num_workers) if info is not None else (0, 1)
            return numbered(Shard(index, count))

    rows = []
    for workers in (0, 2):
        loader = StatefulDataLoader(Numbered(), batch_size=None, num_workers=workers)
        iterator = iter(loader)
        for _ in range(SHALLOW):
            next(iterator)
        shallow_state = loader.state_dict()
        per_call = min(timeit.repeat(loader.state_dict, number=200, repeat=3)) / 200
        del iterator
        deep_state = _torch_state_at(Numbered, workers, DEEP)

        def resume(state: Any, workers: int = workers) -> None:
            resumed = StatefulDataLoader(Numbered(), batch_size=None, num_workers=workers)
            resumed.load_state_dict(state)
            next(iter(resumed))

        where = "in-process" if workers == 0 else f"{workers} workers"
        if deep_state is None:
            rows.append((f"torchdata resume at {DEEP:,}, {where}", "skipped", "too slow to reach"))
        else:
            start = time.perf_counter()
            resume(deep_state)
            rows.append(
                (f"torchdata resume at {DEEP:,}, {where}", f"{time.perf_counter() - start:.3f} s", "one run")
            )
        start = time.perf_counter()
        resume(shallow_state)
        rows.append(
            (f"torchdata resume at {SHALLOW}, {where}", f"{time.perf_counter() - start:.3f} s", "one run")
        )
        rows.append((f"torchdata state_dict() per call, {where}", f"{per_call * 1e6:.1f} µs", ""))
    return rows


def _torch_state_at(dataset: Callable[[], Any], workers: int, batch: int) -> Any:
    """Return a StatefulDataLoader state after ``batch`` batches, reading them (it has no other way)."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    if workers:  # 900,000 batches through 2 worker processes would take minutes: skip the deep row
        return None
    loader = StatefulDataLoader(dataset(), batch_size=None, num_workers=workers)
    iterator = iter(loader)
    for _ in range(batch):
        next(iterator)
    return loader.state_dict()


if __name__ == "__main__":
    main()
