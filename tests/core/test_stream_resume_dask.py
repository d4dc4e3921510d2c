"""Test resume on Dask: a real scheduler and workers as separate processes continue exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from emloop_ds import StreamWrapper
from emloop_ds.core.config import load_config
from emloop_ds.core.factory import create_dataset
from tests.core.resume_reading import read_saving_state
from tests.dask_cluster import DaskTestCluster, run_dask_cluster

pytest.importorskip("distributed")

LENGTH = 9
TOTAL = 2 * LENGTH + 3

# Shipped to the workers by the engine: they run from an empty folder.
DATASET = f"""
from emloop_ds import BaseDataset, Shard

class Data(BaseDataset):
    def _configure_dataset(self, output_dir):
        pass

    def train_stream(self, shard=Shard(0, 1)):
        for number in shard.select(range({LENGTH})):
            yield {{"number": [number], "pass": [shard.epoch]}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskTestCluster]:
    with run_dask_cluster(tmp_path_factory.mktemp("dask-resume-cluster")) as running:
        yield running


def _key(batch: Any) -> tuple[int, int]:
    return int(batch["pass"][0]), int(batch["number"][0])


def _read(stream: StreamWrapper, total: int) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Read ``total`` batches over as many epochs as it takes; return them and the state after the last."""
    return read_saving_state(stream, total, _key)


@pytest.mark.parametrize("epoch_size", [-1, 4])
def test_ordered_dask_resumes_exactly_where_it_stopped(
    cluster: DaskTestCluster, write_dataset: Any, epoch_size: int
) -> None:
    cluster.wait_for_workers()
    stream_fn = create_dataset(load_config(write_dataset(DATASET))).train_stream

    def make() -> StreamWrapper:
        return StreamWrapper(
            stream_fn, "train", workers=2, epoch_size=epoch_size, engine="dask",
            scheduler=cluster.address, scheduler_timeout_s=20,
        )  # fmt: skip

    expected, _ = _read(StreamWrapper(stream_fn, "train", epoch_size=epoch_size), TOTAL)
    assert _read(make(), TOTAL)[0] == expected
    for stop_at in (3, LENGTH, LENGTH + 1, 2 * LENGTH - 1):
        head, state = _read(make(), stop_at)
        resumed = make()
        resumed.load_state_dict(json.loads(json.dumps(state)))
        tail, _ = _read(resumed, TOTAL - stop_at)
        assert head + tail == expected, f"stopped at {stop_at}"
