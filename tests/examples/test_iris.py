"""The Iris example: its streams split and batch the 150 flowers as its README says."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emloop_ds import Shard, StreamWrapper
from emloop_ds.core.config import load_config
from emloop_ds.core.factory import create_dataset

IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris"


def build(*overrides: str) -> object:
    return create_dataset(load_config(IRIS, overrides))


def test_streams_hold_120_training_and_30_test_flowers_in_batches() -> None:
    dataset = build("dataset.batch_size=32")
    train = list(dataset.train_stream())  # type: ignore[attr-defined]
    test = list(dataset.test_stream())  # type: ignore[attr-defined]
    assert [len(batch["labels"]) for batch in train] == [32, 32, 32, 24]
    assert [len(batch["labels"]) for batch in test] == [30]
    assert test[0]["features"].shape == (30, 4)
    assert np.bincount(test[0]["labels"]).tolist() == [10, 10, 10]


def test_train_stream_reshuffles_every_epoch_but_keeps_every_flower() -> None:
    dataset = build()
    epochs = [np.concatenate([b["features"] for b in dataset.train_stream()]) for _ in range(2)]  # type: ignore[attr-defined]
    assert not np.array_equal(epochs[0], epochs[1])
    assert np.array_equal(np.sort(epochs[0], axis=0), np.sort(epochs[1], axis=0))


def test_same_seed_gives_the_same_order() -> None:
    first, second = build("dataset.seed=7"), build("dataset.seed=7")
    assert np.array_equal(
        next(iter(first.train_stream()))["labels"],  # type: ignore[attr-defined]
        next(iter(second.train_stream()))["labels"],  # type: ignore[attr-defined]
    )


def _epochs(stream, count: int) -> list[list[np.ndarray]]:
    return [[batch["features"] for batch in stream] for _ in range(count)]


def test_workers_deliver_exactly_the_in_process_epochs() -> None:
    dataset = build("dataset.batch_size=16")
    expected = _epochs(StreamWrapper(build("dataset.batch_size=16").train_stream), 3)  # type: ignore[attr-defined]
    stream = StreamWrapper(dataset.train_stream, "train", workers=2)  # type: ignore[attr-defined]
    try:
        with stream:
            got = _epochs(stream, 3)
    finally:
        stream.close()
    assert [len(epoch) for epoch in got] == [8, 8, 8]
    for got_epoch, expected_epoch in zip(got, expected, strict=True):
        for got_batch, expected_batch in zip(got_epoch, expected_epoch, strict=True):
            assert np.array_equal(got_batch, expected_batch)
    assert not np.array_equal(got[0][0], got[1][0])  # each pass reshuffles


def test_shards_of_a_pass_partition_one_permutation() -> None:
    dataset = build()
    whole = list(dataset.train_stream(Shard(0, 1, epoch=4)))  # type: ignore[attr-defined]
    parts = [list(dataset.train_stream(Shard(i, 3, epoch=4))) for i in range(3)]  # type: ignore[attr-defined]
    assert [batch["labels"].tolist() for batch in whole] == [
        parts[n % 3][n // 3]["labels"].tolist() for n in range(len(whole))
    ]
