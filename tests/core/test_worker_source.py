"""Test StreamWrapper with workers (worker_source.py): datasets rebuilt in workers, errors, exit."""

from __future__ import annotations

import functools
import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from emloop_ds import ConfigError, Shard, StreamProducerError, StreamWrapper
from emloop_ds.core.config import load_config
from emloop_ds.core.errors import StreamNotEnteredError
from emloop_ds.core.factory import create_dataset
from tests.core import shard_streams
from tests.process_table import wait_for_exit

DEADLINE_S = 20.0
REPO_ROOT = Path(__file__).resolve().parents[2]

SHARDABLE = """
    from emloop_ds import BaseDataset, Shard

    class Data(BaseDataset):
        def _configure_dataset(self, output_dir, size=10, **kwargs):
            self.size = size

        def train_stream(self, shard=Shard(0, 1)):
            for start in shard.select(range(self.size)):
                yield {"x": [start]}

        def plain_stream(self):
            yield {"x": [0]}
"""


@pytest.fixture
def dataset(write_dataset: Any) -> Any:
    return create_dataset(load_config(write_dataset(SHARDABLE)))


def worker_pids(stream: StreamWrapper) -> list[int]:
    source = stream._workers
    assert source is not None
    assert source.engine is not None
    return [pid for pid in source.engine.pids if pid is not None]  # type: ignore[attr-defined]


def xs(epoch: Any) -> list[int]:
    return [batch["x"][0] for batch in epoch]


def test_a_dataset_stream_on_workers_gives_the_in_process_order(dataset):
    expected = xs(StreamWrapper(dataset.train_stream))
    stream = StreamWrapper(dataset.train_stream, "train", workers=3)
    try:
        with stream:
            assert xs(stream) == expected == list(range(10))
            assert xs(stream) == expected
    finally:
        stream.close()


def test_with_blocks_keep_the_position_and_the_turn(dataset):
    stream = StreamWrapper(dataset.train_stream, "train", workers=2, epoch_size=3)
    try:
        epochs = []
        for _ in range(4):
            with stream:
                epochs.append(xs(stream))
        assert epochs == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]]
    finally:
        stream.close()


def test_unordered_workers_deliver_every_batch(dataset):
    stream = StreamWrapper(dataset.train_stream, "train", workers=2, ordered=False, buffer_size=1)
    try:
        with stream:
            assert sorted(xs(stream)) == list(range(10))
    finally:
        stream.close()


def test_a_non_shardable_stream_with_workers_is_refused_at_construction(dataset):
    with pytest.raises(ConfigError, match=r"Data\.plain_stream\) is not shardable") as caught:
        StreamWrapper(dataset.plain_stream, "plain", workers=2)
    assert "def train_stream(self, shard=Shard(0, 1))" in str(caught.value)
    assert "workers=0" in str(caught.value)


def test_a_stream_that_cannot_reach_the_workers_is_refused(dataset):
    def local_stream(shard=Shard(0, 1)):
        yield {"x": [shard.index]}

    with pytest.raises(ConfigError, match="cannot be sent to worker processes"):
        StreamWrapper(local_stream, workers=1)


@pytest.mark.parametrize(
    ("options", "error", "phrase"),
    [
        ({"workers": -1}, ValueError, "workers must be 0"),
        ({"workers": "2"}, TypeError, "workers must be an int"),
        ({"workers": 1, "ordered": "yes"}, TypeError, "ordered must be a bool"),
    ],
)
def test_malformed_worker_arguments_are_refused(dataset, options, error, phrase):
    with pytest.raises(error, match=phrase):
        StreamWrapper(dataset.train_stream, **options)


def test_a_stream_with_workers_is_read_inside_with(dataset):
    stream = StreamWrapper(dataset.train_stream, workers=1)
    with pytest.raises(StreamNotEnteredError, match="inside `with stream:`"):
        next(stream)
    assert stream.empty()
    with stream.allow_buffering:  # accepted, no effect
        pass


def test_a_worker_exception_reaches_the_reader_with_its_cause(workers_import_tests):
    stream_fn = functools.partial(shard_streams.failing, failing_shard=0, fail_at=0, length=2)
    stream = StreamWrapper(stream_fn, "broken", workers=1)
    try:
        with stream:
            with pytest.raises(StreamProducerError, match="stream `broken` failed in shard 0 of 1") as caught:
                next(stream)
            assert type(caught.value.__cause__) is shard_streams.DatasetBroke
            assert xs(stream) == []  # the failed shard ended the pass
    finally:
        stream.close()


def test_close_and_garbage_collection_stop_the_workers(dataset):
    stream = StreamWrapper(dataset.train_stream, workers=2)
    with stream:
        next(stream)
    pids = worker_pids(stream)
    stream.close()
    stream.close()
    assert wait_for_exit(pids) == []

    collected = StreamWrapper(dataset.train_stream, workers=2)
    with collected:
        next(collected)
    pids = worker_pids(collected)
    del collected
    gc.collect()
    assert wait_for_exit(pids) == []


EXITING = textwrap.dedent(
    """
    from emloop_ds import StreamWrapper
    from tests.core.shard_streams import endless

    if __name__ == "__main__":
        stream = StreamWrapper(endless, workers=2)
        with stream:
            next(stream)
            print(*stream._workers.engine.pids, flush=True)
    """
)


def test_interpreter_exit_stops_the_workers(tmp_path: Path):
    script = tmp_path / "exiting.py"
    script.write_text(EXITING, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2
    assert wait_for_exit(pids) == []
