"""Test the worker-process engine and its shared-memory transport against real worker processes."""

from __future__ import annotations

import functools
import gc
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emloop_ds.core.stream.engine import ShardEnd, ShardFailure
from emloop_ds.core.stream.processes import ProcessEngine, WorkerLostError
from emloop_ds.core.stream.remote_error import RemoteExceptionStandIn
from tests.core import shard_streams
from tests.process_table import descendants, shared_memory_of, wait_for_exit

DEADLINE_S = 20.0
REPO_ROOT = Path(__file__).resolve().parents[2]

StartEngine = Callable[..., ProcessEngine]


def our_mappings() -> list[str]:
    """Return the lines of this process's memory map that are slots of ours."""
    return [line for line in Path("/proc/self/maps").read_text().splitlines() if "emloop-ds-slot" in line]


def read_pass(engine: ProcessEngine, shard: int, credit: int = 1000) -> list[Any]:
    engine.start_pass(shard, 0)
    engine.grant(shard, credit)
    items = []
    while True:
        _, item = engine.receive(shard)
        items.append(item)
        if isinstance(item, ShardEnd | ShardFailure):
            return items


def test_arrays_arrive_equal_writable_and_stay_valid_after_the_worker_moved_on(start_engine: StartEngine):
    engine = start_engine(functools.partial(shard_streams.arrays, count=6))
    batches = read_pass(engine, 0)[:-1]
    expected = list(shard_streams.arrays(shard_streams.Shard(0, 1), 6))
    assert len(batches) == 6
    for batch, reference in zip(batches, expected, strict=True):  # the first one was kept all along
        for name in ("c_order", "f_order", "strided", "structured", "objects", "small"):
            assert batch[name].dtype == reference[name].dtype
            np.testing.assert_array_equal(batch[name], reference[name])
            assert batch[name].flags.writeable
        np.testing.assert_array_equal(batch["listed"][0], reference["listed"][0])
    batches[0]["c_order"][:] = -1  # the reader may write into what it received
    assert (batches[0]["c_order"] == -1).all()
    np.testing.assert_array_equal(batches[1]["c_order"], expected[1]["c_order"])


def test_slots_are_reused_once_the_reader_drops_the_arrays(start_engine: StartEngine):
    engine = start_engine(functools.partial(shard_streams.big, nbytes_each=1 << 20, count=200))
    engine.start_pass(0, 0)
    total = 0
    for _ in range(200):
        engine.grant(0, 1)
        _, batch = engine.receive(0)
        total += int(batch["x"][0])
        del batch
    assert total == sum(range(200))
    assert len(our_mappings()) <= 6  # a few slots went round, not one per batch


def test_the_pool_grows_instead_of_blocking_when_the_reader_keeps_arrays(start_engine: StartEngine):
    engine = start_engine(functools.partial(shard_streams.big, nbytes_each=1 << 20, count=40))
    kept = [item["x"] for item in read_pass(engine, 0, credit=41)[:-1]]
    assert [int(array[0]) for array in kept] == list(range(40))
    assert all((array == number).all() for number, array in enumerate(kept))


def test_slots_are_anonymous_and_closing_frees_every_one(start_engine: StartEngine):
    engine = start_engine(functools.partial(shard_streams.big, nbytes_each=1 << 20, count=10), 2)
    kept = read_pass(engine, 0)[0]
    read_pass(engine, 1)
    for pid in [os.getpid(), *engine.pids]:
        assert pid is not None
        named, slots = shared_memory_of(pid)
        assert named == []  # nothing in /dev/shm, so nothing there can be left behind
        assert slots
        assert all(slot.startswith("/memfd:emloop-ds-slot") for slot in slots)
    engine.close()
    assert wait_for_exit([pid for pid in engine.pids if pid is not None]) == []
    assert (kept["x"] == 0).all()  # a kept array outlives the worker and the engine
    del kept
    gc.collect()
    assert our_mappings() == []


def test_a_worker_exception_arrives_with_its_type_message_and_traceback(start_engine: StartEngine):
    engine = start_engine(
        functools.partial(shard_streams.failing, failing_shard=0, fail_at=1, length=3), count=1
    )
    items = read_pass(engine, 0)
    assert len(items) == 2
    failure = items[-1]
    assert isinstance(failure, ShardFailure)
    assert type(failure.error) is shard_streams.DatasetBroke
    assert str(failure.error) == "bad record 1 in shard 0"
    assert f"worker process {engine.pids[0]}" in failure.where
    notes = "\n".join(failure.error.__notes__)
    assert "Traceback in worker process" in notes
    assert 'raise DatasetBroke(f"bad record' in notes


@pytest.mark.parametrize(
    ("kind", "type_name", "message"),
    [
        ("unpicklable", "HoldsALock", "a lock cannot travel"),
        ("unrebuildable", "NeedsTwoArguments", "code 7: cannot be rebuilt"),
    ],
)
def test_an_exception_that_cannot_cross_arrives_as_a_stand_in(start_engine, kind, type_name, message):
    engine = start_engine(functools.partial(shard_streams.raising, kind=kind))
    failure = read_pass(engine, 0)[-1]
    assert isinstance(failure, ShardFailure)
    assert isinstance(failure.error, RemoteExceptionStandIn)
    assert type_name in failure.error.type_name
    assert message in str(failure.error)
    assert "Traceback in worker process" in "\n".join(failure.error.__notes__)
    assert f"raise {type_name}(" in failure.error.remote_traceback


def test_a_killed_worker_is_reported_promptly_and_replaced_at_the_next_pass(start_engine: StartEngine):
    engine = start_engine(shard_streams.endless, 2)
    engine.start_pass(1, 0)
    engine.grant(1, 1)
    _, first = engine.receive(1)
    victim = first["pid"][0]
    assert victim == engine.pids[1]
    os.kill(victim, signal.SIGKILL)
    engine.grant(1, 1000)
    start = time.monotonic()
    while True:
        _, item = engine.receive(1)
        if isinstance(item, ShardFailure):
            break
    waited_s = time.monotonic() - start
    assert isinstance(item.error, WorkerLostError)
    assert "killed by signal SIGKILL" in str(item.error)
    assert f"worker process {victim} (shard 1 of 2)" in str(item.error)
    assert waited_s < 5.0  # the issue asks for 1 s; the margin is for a CPU shared with other tests
    engine.start_pass(1, 1)
    engine.grant(1, 1)
    _, item = engine.receive(1)
    assert item["pid"][0] != victim
    assert item["number"] == [0]


def test_close_stops_a_worker_busy_in_its_stream(start_engine: StartEngine):
    engine = start_engine(shard_streams.endless, 2)
    for shard in range(2):
        engine.start_pass(shard, 0)
        engine.grant(shard, 5)
    engine.receive(None)
    pids = [pid for pid in engine.pids if pid is not None]
    engine.close()
    assert wait_for_exit(pids) == []


CONSUMER = textwrap.dedent(
    """
    import sys
    from emloop_ds.core.stream.engine import StreamSpec
    from emloop_ds.core.stream.processes import ProcessEngine
    from tests.core.shard_streams import endless

    if __name__ == "__main__":
        engine = ProcessEngine(StreamSpec("endless", function=endless), 2)
        for shard in range(2):
            engine.start_pass(shard, 0)
            engine.grant(shard, 2)
        for _ in range(4):
            engine.receive(None)
        print(*engine.pids, flush=True)
        sys.stdin.read()  # until the test kills us
    """
)


def test_a_killed_consumer_takes_its_workers_with_it(tmp_path: Path):
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER, encoding="utf-8")
    with subprocess.Popen(
        [sys.executable, str(script)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    ) as consumer:
        try:
            assert consumer.stdout is not None
            pids = [int(pid) for pid in consumer.stdout.readline().split()]
            assert len(pids) == 2
            family = descendants(consumer.pid)  # the forkserver, its workers, the resource tracker
            assert set(pids) <= set(family)
            assert wait_for_exit(pids, timeout_s=0.0) == pids  # running while the consumer lives
        finally:
            consumer.kill()
            consumer.wait(DEADLINE_S)
    killed = time.monotonic()
    assert wait_for_exit(family) == []
    assert time.monotonic() - killed < 5.0  # the issue asks for 1 s; the margin is for a shared CPU


def test_a_reader_keeping_arrays_past_the_open_file_limit_raises_the_limit(start_engine: StartEngine):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard limit on open files is only {hard}")
    engine = start_engine(functools.partial(shard_streams.big, nbytes_each=1 << 16, count=60))
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 20, hard))
    try:
        kept = [item["x"] for item in read_pass(engine, 0, credit=61)[:-1]]
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [int(array[0]) for array in kept] == list(range(60))


def test_a_worker_that_exits_abruptly_is_reported_with_its_exit_status(start_engine: StartEngine):
    engine = start_engine(shard_streams.exiting)
    items = read_pass(engine, 0)
    assert len(items) == 2
    assert items[0] == {"shard": [0]}
    failure = items[1]
    assert isinstance(failure, ShardFailure)
    assert isinstance(failure.error, WorkerLostError)
    assert f"worker process {engine.pids[0]} (shard 0 of 1) exited with status 3" in str(failure.error)
