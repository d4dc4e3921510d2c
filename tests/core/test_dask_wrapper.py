"""Test ``StreamWrapper(..., workers=N, engine="dask")`` against the worker-process engine."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emloop_ds import StreamWrapper
from emloop_ds.core.config import load_config
from emloop_ds.core.errors import ConfigError, StreamProducerError
from emloop_ds.core.factory import create_dataset
from tests.dask_cluster import DaskTestCluster, run_dask_cluster

pytest.importorskip("distributed")

IRIS_CONFIG = Path(__file__).parents[2] / "examples" / "iris" / "config.yaml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskTestCluster]:
    with run_dask_cluster(tmp_path_factory.mktemp("dask-wrapper-cluster")) as running:
        yield running


def _read(wrapper: StreamWrapper, epochs: int) -> list[list[Any]]:
    with wrapper:
        return [list(wrapper) for _ in range(epochs)]


def _same_batches(left: list[list[Any]], right: list[list[Any]]) -> bool:
    flat = [
        (a, b)
        for epoch_a, epoch_b in zip(left, right, strict=True)
        for a, b in zip(epoch_a, epoch_b, strict=True)
    ]
    return all(a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) for a, b in flat) and [
        len(epoch) for epoch in left
    ] == [len(epoch) for epoch in right]


@pytest.mark.parametrize("epoch_size", [-1, 5])
def test_dask_batches_and_order_equal_the_worker_processes(cluster: DaskTestCluster, epoch_size: int) -> None:
    cluster.wait_for_workers()
    dataset = create_dataset(load_config(IRIS_CONFIG))
    on_processes = StreamWrapper(dataset.train_stream, "train", workers=2, epoch_size=epoch_size)
    on_dask = StreamWrapper(
        dataset.train_stream, "train", workers=2, epoch_size=epoch_size, engine="dask",
        scheduler=cluster.address, scheduler_timeout_s=20,
    )  # fmt: skip
    try:
        expected, got = _read(on_processes, 3), _read(on_dask, 3)
    finally:
        on_processes.close()
        on_dask.close()
    assert sum(len(epoch) for epoch in got) > 0
    assert _same_batches(got, expected)
    assert _same_batches(got, _read(StreamWrapper(dataset.train_stream, epoch_size=epoch_size), 3))


def test_unordered_dask_delivers_the_same_batches(cluster: DaskTestCluster) -> None:
    cluster.wait_for_workers()
    dataset = create_dataset(load_config(IRIS_CONFIG))
    wrapper = StreamWrapper(
        dataset.train_stream, workers=3, ordered=False, engine="dask", scheduler=cluster.address,
        scheduler_timeout_s=20,
    )  # fmt: skip
    try:
        (epoch,) = _read(wrapper, 1)
    finally:
        wrapper.close()
    (expected,) = _read(StreamWrapper(dataset.train_stream), 1)
    key = lambda batch: batch["features"].tobytes()  # noqa: E731
    assert sorted(map(key, epoch)) == sorted(map(key, expected))


def test_local_cluster_by_default_and_a_shard_error_with_its_cause(write_dataset: Any) -> None:
    config = write_dataset(
        """
        from emloop_ds import BaseDataset, Shard

        class Data(BaseDataset):
            def _configure_dataset(self, output_dir):
                pass

            def train_stream(self, shard=Shard(0, 1)):
                for i in shard.select(range(6)):
                    if i == 3:
                        raise KeyError("no batch 3")
                    yield {"i": [i]}
        """
    )
    dataset = create_dataset(load_config(config))
    wrapper = StreamWrapper(dataset.train_stream, "train", workers=2, engine="dask")
    try:
        with wrapper:
            got = [next(wrapper)["i"][0] for _ in range(3)]
            with pytest.raises(
                StreamProducerError, match=r"shard 1 of 2 \(dask worker tcp://127\.0\.0\.1:"
            ) as info:
                next(wrapper)
            assert [batch["i"][0] for batch in wrapper] == [4]
        assert wrapper.shard_engine is not None
        assert wrapper.shard_engine.scheduler == "local"  # type: ignore[attr-defined]
    finally:
        wrapper.close()
    assert got == [0, 1, 2]
    assert isinstance(info.value.__cause__, KeyError)


def test_dask_options_are_checked_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    stream_fn = create_dataset(load_config(IRIS_CONFIG)).train_stream
    with pytest.raises(ValueError, match="engine='dask' needs workers=N"):
        StreamWrapper(stream_fn, engine="dask")
    with pytest.raises(ValueError, match="engine must be one of 'processes', 'dask'"):
        StreamWrapper(stream_fn, workers=2, engine="ray")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="scheduler needs engine='dask'"):
        StreamWrapper(stream_fn, workers=2, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="scheduler_timeout_s must be a number above 0"):
        StreamWrapper(stream_fn, workers=2, engine="dask", scheduler_timeout_s=0)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"pip install 'emloop-ds\[dask\]'"):
        StreamWrapper(stream_fn, workers=2, engine="dask")


def test_dask_workers_write_the_cache_and_stop_once_it_is_sealed(
    cluster: DaskTestCluster, write_dataset: Any, tmp_path: Path
) -> None:
    config = write_dataset(
        """
        import numpy as np
        from emloop_ds import BaseDataset, Shard

        class Data(BaseDataset):
            def _configure_dataset(self, output_dir):
                pass

            def train_stream(self, shard=Shard(0, 1)):
                for i in shard.select(range(9)):
                    yield {"x": np.full((3, 2), i, np.float32), "i": [i, i, i]}
        """
    )
    dataset = create_dataset(load_config(config))
    wrapper = StreamWrapper(
        dataset.train_stream,
        "train",
        workers=2,
        engine="dask",
        scheduler=cluster.address,
        cache=tmp_path / "c",
    )
    try:
        with wrapper:
            epochs = [[batch["i"][0] for batch in wrapper] for _ in range(3)]
            assert wrapper.cache_mode == "write"
    finally:
        wrapper.close()
    assert epochs == [list(range(9))] * 3
    in_process = StreamWrapper(dataset.train_stream, "train", cache=tmp_path / "d")
    with in_process:
        list(in_process)
    written = [(path / "data.arrow").read_bytes() for path in (wrapper.cache_path, in_process.cache_path)]
    assert written[0] == written[1]  # the same cache whatever the engine
    sealed = StreamWrapper(
        dataset.train_stream,
        "train",
        workers=2,
        engine="dask",
        scheduler=cluster.address,
        cache=tmp_path / "c",
    )
    with sealed:
        assert [batch["i"][0] for batch in sealed] == list(range(9))
        assert sealed.shard_engine is None  # a sealed cache needs no Dask actor
    sealed.close()
