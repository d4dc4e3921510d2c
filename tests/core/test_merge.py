"""Test ShardMerge over real worker processes: order, passes, epochs, credits and failures."""

from __future__ import annotations

import functools
import os
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from emloop_ds.core.errors import StreamError, StreamProducerError
from emloop_ds.core.stream.merge import ShardMerge
from emloop_ds.core.stream.processes import ProcessEngine, WorkerLostError
from tests.core import shard_streams

StartEngine = Callable[..., ProcessEngine]


def make_merge(engine: ProcessEngine, ordered: bool = True, buffer_size: int = 2, epoch_size: int = -1):
    return ShardMerge(
        engine,
        ordered=ordered,
        buffer_size=buffer_size,
        epoch_size=epoch_size,
        description="test stream",
    )


def read_epoch(merge: ShardMerge) -> list[tuple[int, int, int]]:
    """Read one epoch as (shard, number, pass) triples."""
    epoch = []
    while (batch := merge.next_batch()) is not None:
        epoch.append((batch["shard"][0], batch["number"][0], batch.get("epoch", [-1])[0]))
    return epoch


def round_robin(lengths: Sequence[int], pass_number: int = 0) -> list[tuple[int, int, int]]:
    """Return the order of one pass: one batch of each shard in turn, skipping the shards that ended."""
    order = []
    for number in range(max(lengths, default=0)):
        order.extend((shard, number, pass_number) for shard, length in enumerate(lengths) if number < length)
    return order


def numbered(start_engine: StartEngine, lengths: Sequence[int]) -> ProcessEngine:
    return start_engine(functools.partial(shard_streams.numbered, lengths=tuple(lengths)), len(lengths))


def test_ordered_merge_takes_one_batch_per_shard_in_turn_skipping_ended_ones(start_engine):
    lengths = (3, 1, 0, 2)
    merge = make_merge(numbered(start_engine, lengths))
    assert read_epoch(merge) == round_robin(lengths, 0)
    assert read_epoch(merge) == round_robin(lengths, 1)  # each pass restarts at shard 0, as pass 1


def test_unordered_merge_delivers_the_same_multiset(start_engine):
    lengths = (5, 2, 7)
    merge = make_merge(numbered(start_engine, lengths), ordered=False)
    assert Counter(read_epoch(merge)) == Counter(round_robin(lengths))
    assert Counter(read_epoch(merge)) == Counter(round_robin(lengths, 1))


def test_fixed_size_epochs_cut_across_passes_and_keep_the_turn(start_engine):
    lengths = (3, 1)
    merge = make_merge(numbered(start_engine, lengths), epoch_size=3)
    stream = round_robin(lengths, 0) + round_robin(lengths, 1) + round_robin(lengths, 2)
    epochs = [read_epoch(merge) for _ in range(4)]
    assert epochs == [stream[0:3], stream[3:6], stream[6:9], stream[9:12]]


@pytest.mark.parametrize("ordered", [True, False])
def test_no_batch_of_the_next_epoch_is_made_before_the_reader_asks(start_engine, tmp_path: Path, ordered):
    stream = functools.partial(shard_streams.counted, log_dir=str(tmp_path), length=10)
    merge = make_merge(start_engine(stream, 2), ordered=ordered, buffer_size=2, epoch_size=5)

    def made() -> int:
        return sum(len(log.read_text().splitlines()) for log in tmp_path.glob("*.log"))

    assert len(read_epoch(merge)) == 5
    assert made() == 5
    assert len(read_epoch(merge)) == 5
    assert made() == 10


def test_a_failure_arrives_in_stream_order_and_ends_only_its_shard(start_engine):
    stream = functools.partial(shard_streams.failing, failing_shard=1, fail_at=1, length=3)
    merge = make_merge(start_engine(stream, 2))
    for _ in range(2):  # the next pass fails the same way and the merge goes on
        got = [merge.next_batch() for _ in range(3)]
        assert [(batch["shard"][0], batch["number"][0]) for batch in got] == [(0, 0), (1, 0), (0, 1)]
        with pytest.raises(StreamProducerError, match=r"failed in shard 1 of 2 \(worker process") as caught:
            merge.next_batch()
        assert type(caught.value.__cause__) is shard_streams.DatasetBroke
        assert isinstance(caught.value, ChildProcessError)
        last = merge.next_batch()
        assert last is not None
        assert (last["shard"][0], last["number"][0]) == (0, 2)
        assert merge.next_batch() is None


def test_a_pass_without_batches_is_an_empty_epoch_but_cannot_fill_a_fixed_one(start_engine):
    assert read_epoch(make_merge(numbered(start_engine, (0, 0)))) == []
    merge = make_merge(numbered(start_engine, (0, 0)), epoch_size=2)
    with pytest.raises(StreamError, match="yielded no batches in a whole pass of its 2 shards"):
        merge.next_batch()


def test_a_worker_killed_mid_epoch_fails_its_shard_and_is_replaced_next_pass(start_engine):
    lengths = (200, 200)
    engine = numbered(start_engine, lengths)
    merge = make_merge(engine)
    got: list[Any] = [merge.next_batch() for _ in range(10)]
    victim = engine.pids[1]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    errors = []
    while True:
        try:
            batch = merge.next_batch()
        except StreamProducerError as exc:
            errors.append(exc)
            continue
        if batch is None:
            break
        got.append(batch)
    assert len(errors) == 1
    assert isinstance(errors[0].__cause__, WorkerLostError)
    assert "SIGKILL" in str(errors[0])
    assert [b["number"][0] for b in got if b["shard"][0] == 0] == list(range(200))
    assert read_epoch(merge) == round_robin(lengths, 1)
    assert engine.pids[1] != victim
