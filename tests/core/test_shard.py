"""Test Shard: validation, selection and reproducible seeds."""

from __future__ import annotations

import pytest

from emloop_ds import Shard
from emloop_ds.core.stream.shard import is_shardable


def test_shards_partition_a_sequence():
    items = list(range(10))
    parts = [Shard(i, 3).select(items) for i in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert Shard(0, 1).select(items) == items


@pytest.mark.parametrize(("index", "count"), [(-1, 2), (2, 2), (0, 0)])
def test_shard_out_of_range_is_refused(index, count):
    with pytest.raises(ValueError, match="0 <= index < count"):
        Shard(index, count)


def test_shard_is_immutable_and_hashable():
    shard = Shard(1, 2, epoch=3)
    with pytest.raises(AttributeError):
        shard.index = 0  # type: ignore[misc]
    assert {shard, Shard(1, 2, 3)} == {shard}


def test_seeds_differ_per_index_and_epoch_and_repeat():
    seeds = {Shard(i, 4, epoch=e).seed(7) for i in range(4) for e in range(3)}
    assert len(seeds) == 12
    assert Shard(2, 4, 1).seed(7) == Shard(2, 4, 1).seed(7)
    assert Shard(2, 4, 1).seed(7) != Shard(2, 4, 1).seed(8)


def test_shared_seed_is_common_to_the_shards_of_a_pass():
    assert len({Shard(i, 4, epoch=2).shared_seed(7) for i in range(4)}) == 1
    assert Shard(0, 4, 1).shared_seed(7) != Shard(0, 4, 2).shared_seed(7)


def test_is_shardable_needs_a_shard_keyword():
    def plain():
        return []

    def sharded(shard=Shard(0, 1)):
        return []

    def positional_only(shard, /):
        return []

    assert not is_shardable(plain)
    assert is_shardable(sharded)
    assert not is_shardable(positional_only)
