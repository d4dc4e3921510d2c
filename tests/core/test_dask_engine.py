"""Tests of the Dask shard engine against a real scheduler and real workers in separate processes."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emloop_ds.core.errors import ConfigError, StreamError
from emloop_ds.core.stream.dask import DaskEngine
from emloop_ds.core.stream.dask.shipping import code_to_ship
from emloop_ds.core.stream.engine import ShardEnd, ShardFailure, ShardItem, StreamSpec
from emloop_ds.core.stream.remote_error import RemoteExceptionStandIn
from emloop_ds.core.stream.shard import Shard
from tests.dask_cluster import DaskTestCluster, run_dask_cluster

psutil = pytest.importorskip("psutil")
pytest.importorskip("distributed")

_module_numbers = itertools.count()

# A dataset whose stream `numbers` yields batch i of `length` as {"i": [i], "pid": [worker pid]}, appends
# each batch it makes to the file `log` (so tests count what was produced), raises at `fail_at`, and
# waits `delay_s` per batch.
_DATASET = """
import os
import time

class Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} {b}")

class Data:
    def __init__(self, config_str):
        self.length, self.fail_at, self.log, self.delay_s, self.kind = config_str.split("|")

    def numbers(self, shard):
        for i in shard.select(range(int(self.length))):
            if i == int(self.fail_at):
                if self.kind == "unpicklable":
                    raise Unpicklable("no", "pickle")
                raise ValueError(f"batch {i} is broken")
            time.sleep(float(self.delay_s))
            if self.log:
                with open(self.log, "a") as log:
                    log.write(f"{i}\\n")
            yield {"i": [i], "pid": [os.getpid()]}
"""


def _write_dataset(folder: Path) -> tuple[str, Path]:
    """Write the dataset module under a session-unique name into ``folder``; return its name and path."""
    name = f"daskdata_{os.getpid()}_{next(_module_numbers)}"
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(_DATASET), encoding="utf-8")
    return name, path


def _spec(
    folder: Path,
    length: int,
    fail_at: int = -1,
    log: Path | None = None,
    delay_s: float = 0.0,
    kind: str = "",
) -> StreamSpec:
    name, path = _write_dataset(folder)
    config = f"{length}|{fail_at}|{log or ''}|{delay_s}|{kind}"
    return StreamSpec(
        "numbers", dataset_module=name, dataset_qualname="Data", config_str=config, method="numbers",
        module_file=str(path),
    )  # fmt: skip


def _read_pass(engine: DaskEngine, epoch: int = 0, credit: int = 2) -> list[list[ShardItem]]:
    """Read one pass of every shard round-robin, granting one credit per batch received."""
    items: list[list[ShardItem]] = [[] for _ in range(engine.shard_count)]
    for shard in range(engine.shard_count):
        engine.start_pass(shard, epoch)
        engine.grant(shard, credit)
    live = list(range(engine.shard_count))
    while live:
        for shard in list(live):
            _, item = engine.receive(shard)
            items[shard].append(item)
            if isinstance(item, ShardEnd | ShardFailure):
                live.remove(shard)
            else:
                engine.grant(shard, 1)
    return items


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskTestCluster]:
    with run_dask_cluster(tmp_path_factory.mktemp("dask-cluster")) as running:
        yield running


@pytest.fixture
def engine_on(cluster: DaskTestCluster) -> Iterator[object]:
    """Return a function making engines on the test cluster; close them after the test."""
    cluster.wait_for_workers()
    engines: list[DaskEngine] = []

    def make(spec: StreamSpec, shards: int = 2) -> DaskEngine:
        engines.append(DaskEngine(spec, shards, scheduler=cluster.address, scheduler_timeout_s=20))
        return engines[-1]

    yield make
    for engine in engines:
        engine.close()


def test_shards_deliver_their_batches_in_order_from_shipped_code(engine_on, tmp_path: Path) -> None:
    spec = _spec(tmp_path, length=41)
    engine = engine_on(spec, 3)
    for epoch in range(2):
        items = _read_pass(engine, epoch, credit=1)
        for shard in range(3):
            assert isinstance(items[shard][-1], ShardEnd)
            numbers = [batch["i"][0] for batch in items[shard][:-1]]
            assert numbers == list(Shard(shard, 3).select(range(41)))
    pids = {batch["pid"][0] for shard_items in items for batch in shard_items[:-1]}
    assert os.getpid() not in pids
    assert len(pids) == 2  # three shards spread over both workers


def test_many_calls_in_flight_keep_each_shard_in_order(engine_on, tmp_path: Path) -> None:
    engine = engine_on(_spec(tmp_path, length=600), 2)
    items = _read_pass(engine, credit=6)
    for shard in range(2):
        assert [batch["i"][0] for batch in items[shard][:-1]] == list(range(shard, 600, 2))


def test_round_robin_over_shards_equals_the_unsharded_stream(engine_on, tmp_path: Path) -> None:
    engine = engine_on(_spec(tmp_path, length=9), 2)
    items = _read_pass(engine)
    merged = [item for pair in itertools.zip_longest(*items) for item in pair if isinstance(item, dict)]
    assert [batch["i"][0] for batch in merged] == list(range(9))


def test_shards_make_no_batch_beyond_their_credit(engine_on, tmp_path: Path) -> None:
    log = tmp_path / "produced.log"
    engine = engine_on(_spec(tmp_path, length=50, log=log), 1)
    engine.start_pass(0, 0)
    received = []
    for credit in (3, 1, 4):
        engine.grant(0, credit)
        received += [engine.receive(0)[1] for _ in range(credit)]
        assert len(log.read_text().split()) == len(received)
    assert [batch["i"][0] for batch in received] == list(range(8))


def test_a_pass_started_at_start_skips_those_batches_and_the_next_pass_starts_at_0(
    engine_on, tmp_path: Path
) -> None:
    log = tmp_path / "produced.log"
    engine = engine_on(_spec(tmp_path, length=12, log=log), 2)
    for shard, start in ((0, 4), (1, 2)):
        engine.start_pass(shard, 0, start)
        engine.grant(shard, 12)
    resumed = [[engine.receive(shard)[1] for _ in range(7 - start)] for shard, start in ((0, 4), (1, 2))]
    assert [[item["i"][0] for item in items[:-1]] for items in resumed] == [[8, 10], [5, 7, 9, 11]]
    assert all(isinstance(items[-1], ShardEnd) for items in resumed)
    assert sorted(map(int, log.read_text().split())) == [5, 7, 8, 9, 10, 11]  # nothing skipped was made
    items = _read_pass(engine, epoch=1)
    assert [[item["i"][0] for item in shard_items[:-1]] for shard_items in items] == [
        list(range(0, 12, 2)),
        list(range(1, 12, 2)),
    ]


def test_receive_any_shard_returns_every_item_once(engine_on, tmp_path: Path) -> None:
    engine = engine_on(_spec(tmp_path, length=20), 2)
    for shard in range(2):
        engine.start_pass(shard, 0)
        engine.grant(shard, 2)
    ends, numbers = 0, []
    while ends < 2:
        shard, item = engine.receive(None)
        if isinstance(item, ShardEnd):
            ends += 1
        else:
            numbers.append(item["i"][0])
            engine.grant(shard, 1)
    assert sorted(numbers) == list(range(20))


def test_shard_exception_arrives_in_order_with_cause_and_worker(engine_on, tmp_path: Path) -> None:
    engine = engine_on(_spec(tmp_path, length=20, fail_at=6), 2)
    items = _read_pass(engine)
    assert [batch["i"][0] for batch in items[0][:-1]] == [0, 2, 4]
    failure = items[0][-1]
    assert isinstance(failure, ShardFailure)
    assert isinstance(failure.error, ValueError)
    assert str(failure.error) == "batch 6 is broken"
    assert "raise ValueError" in "".join(failure.error.__notes__)
    assert failure.where.startswith("dask worker tcp://127.0.0.1:")
    assert isinstance(items[1][-1], ShardEnd)
    assert len(items[1]) == 11
    items = _read_pass(engine, epoch=1)  # the next pass starts afresh
    assert isinstance(items[0][-1], ShardFailure)


def test_unpicklable_exception_arrives_as_a_stand_in(engine_on, tmp_path: Path) -> None:
    engine = engine_on(_spec(tmp_path, length=4, fail_at=0, kind="unpicklable"), 1)
    failure = _read_pass(engine)[0][-1]
    assert isinstance(failure, ShardFailure)
    assert isinstance(failure.error, RemoteExceptionStandIn)
    assert "Unpicklable: no pickle" in str(failure.error)


def test_killed_worker_fails_its_shard_naming_it_and_the_address(
    engine_on, cluster: DaskTestCluster, tmp_path: Path
) -> None:
    engine = engine_on(_spec(tmp_path, length=400, delay_s=0.01), 2)
    for shard in range(2):
        engine.start_pass(shard, 0)
        engine.grant(shard, 2)
    _, first = engine.receive(0)
    assert isinstance(first, dict)
    os.kill(first["pid"][0], signal.SIGKILL)
    killed_at = time.monotonic()
    numbers = [first["i"][0]]
    while True:
        _, item = engine.receive(0)
        if not isinstance(item, dict):
            break
        numbers.append(item["i"][0])
        engine.grant(0, 1)
    assert time.monotonic() - killed_at < 10
    assert isinstance(item, ShardFailure)
    assert "shard 0" in str(item.error)
    assert item.where.startswith("dask worker tcp://127.0.0.1:")
    assert item.where.removeprefix("dask worker ") in str(item.error)
    assert numbers == list(range(0, 2 * len(numbers), 2))  # nothing lost or repeated before the failure
    cluster.wait_for_workers()
    items = _read_pass(engine, epoch=1)  # a new actor on a live worker
    assert [batch["i"][0] for batch in items[0][:-1]] == list(range(0, 400, 2))


def test_no_scheduler_given_uses_the_one_in_dask_config(cluster: DaskTestCluster, tmp_path: Path) -> None:
    import dask.config

    cluster.wait_for_workers()
    with dask.config.set({"scheduler-address": cluster.address}):
        engine = DaskEngine(_spec(tmp_path, 5), 2, scheduler_timeout_s=20)
    try:
        assert engine.scheduler == cluster.address
        assert [len(shard_items) for shard_items in _read_pass(engine)] == [4, 3]
    finally:
        engine.close()


def test_a_client_given_is_used_and_left_open(cluster: DaskTestCluster, tmp_path: Path) -> None:
    cluster.wait_for_workers()
    engine = DaskEngine(_spec(tmp_path, 3), 1, scheduler=cluster.client, scheduler_timeout_s=20)
    try:
        assert engine.scheduler == cluster.address
        assert [len(shard_items) for shard_items in _read_pass(engine)] == [4]
    finally:
        engine.close()
    assert cluster.client.status == "running"


def test_unreachable_scheduler_fails_within_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StreamError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        DaskEngine(_spec(tmp_path, 4), 2, scheduler=f"tcp://127.0.0.1:{port}", scheduler_timeout_s=1.5)
    assert time.monotonic() - started < 6


def test_missing_dask_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"pip install 'emloop-ds\[dask\]'"):
        DaskEngine(_spec(tmp_path, 4), 2)


def test_importing_the_engine_does_not_import_dask() -> None:
    code = (
        "import sys, emloop_ds.core.stream.dask; print('distributed' in sys.modules, 'dask' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.split() == ["False", "False"]


def test_only_code_outside_installed_packages_is_shipped(tmp_path: Path) -> None:
    package = tmp_path / "shippkg" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "shippkg" / "__init__.py").touch()
    (package / "__init__.py").touch()
    (package / "data.py").touch()
    spec = StreamSpec("x", dataset_module="shippkg.sub.data", module_file=str(package / "data.py"))
    assert code_to_ship(spec) == ("shippkg", tmp_path / "shippkg")
    spec = StreamSpec("x", dataset_module="shippkg", module_file=str(tmp_path / "shippkg" / "__init__.py"))
    assert code_to_ship(spec) == ("shippkg", tmp_path / "shippkg")
    import numpy

    assert code_to_ship(StreamSpec("x", function=numpy.arange)) is None
    assert code_to_ship(StreamSpec("x", function=Shard)) is None


def test_shipped_package_is_importable_on_the_workers(engine_on, tmp_path: Path) -> None:
    name = f"daskpkg_{os.getpid()}"
    package = tmp_path / name / "streams"
    package.mkdir(parents=True)
    (tmp_path / name / "__init__.py").write_text("SIZE = 5\n")
    (package / "__init__.py").touch()
    (package / "data.py").write_text(
        f"from {name} import SIZE\n\nclass Data:\n    def __init__(self, config_str):\n        pass\n\n"
        "    def numbers(self, shard):\n        for i in shard.select(range(SIZE)):\n"
        "            yield {'i': [i]}\n"
    )
    spec = StreamSpec(
        "p", dataset_module=f"{name}.streams.data", dataset_qualname="Data", config_str="", method="numbers",
        module_file=str(package / "data.py"),
    )  # fmt: skip
    items = _read_pass(engine_on(spec, 2))
    assert [batch["i"][0] for batch in items[0][:-1] + items[1][:-1]] == [0, 2, 4, 1, 3]


# The LocalCluster default: its processes are children of this process.


def _new_children(before: set[int]) -> list[psutil.Process]:
    """Return this process's new children, except multiprocessing's resource tracker, which lives as
    long as this process does, whoever started it first."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in before and "resource_tracker" not in " ".join(child.cmdline())
    ]


def _assert_all_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == []


def test_local_cluster_listens_on_loopback_only_and_leaves_no_process(tmp_path: Path) -> None:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    engine = DaskEngine(_spec(tmp_path, 6), 2)
    try:
        assert engine.scheduler == "local"
        items = _read_pass(engine)
        assert [len(shard_items) for shard_items in items] == [4, 4]
        children = _new_children(before)
        assert len(children) >= 2
        for process in [psutil.Process(), *children]:
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    assert connection.laddr.ip == "127.0.0.1"
    finally:
        engine.close()
    engine.close()  # idempotent
    _assert_all_gone(children)


def test_local_cluster_leaves_no_process_after_an_error(tmp_path: Path) -> None:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    engine = DaskEngine(_spec(tmp_path, 6, fail_at=1), 2)
    children = _new_children(before)
    try:
        assert isinstance(_read_pass(engine)[1][-1], ShardFailure)
    finally:
        engine.close()
    _assert_all_gone(children)


_INTERRUPTED_READER = """
import sys
from emloop_ds.core.stream.dask import DaskEngine
from emloop_ds.core.stream.engine import StreamSpec

if __name__ == "__main__":
    spec = StreamSpec("n", dataset_module=sys.argv[1], dataset_qualname="Data", config_str=sys.argv[2],
                      method="numbers", module_file=sys.argv[3])
    engine = DaskEngine(spec, 2)
    engine.start_pass(0, 0)
    engine.grant(0, 1)
    print("reading", flush=True)
    engine.receive(0)
    while True:
        engine.grant(0, 1)
        engine.receive(0)
"""


def test_local_cluster_leaves_no_process_after_ctrl_c(tmp_path: Path) -> None:
    spec = _spec(tmp_path, 10**6, delay_s=0.01)
    script = tmp_path / "reader.py"
    script.write_text(_INTERRUPTED_READER)
    reader = subprocess.Popen(
        [sys.executable, str(script), str(spec.dataset_module), str(spec.config_str), str(spec.module_file)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "reading\n"
        children = psutil.Process(reader.pid).children(recursive=True)
        assert len(children) >= 2
        reader.send_signal(signal.SIGINT)
        _, stderr = reader.communicate(timeout=20)
    finally:
        reader.kill()
    assert reader.returncode != 0
    assert "KeyboardInterrupt" in stderr
    _assert_all_gone(children)
