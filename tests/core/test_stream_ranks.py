"""Test StreamWrapper's ranks: data-parallel readers that split one stream, in-process and on workers."""

from __future__ import annotations

import functools
import logging

import pytest

from emloop_ds import ConfigError, StreamWrapper
from tests.core.shard_streams import selected


def _numbers(stream: StreamWrapper) -> list[int]:
    try:
        with stream:
            return [batch["number"][0] for batch in stream]
    finally:
        stream.close()


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.usefixtures("workers_import_tests")
def test_ranks_read_disjoint_parts_covering_the_stream_whatever_the_workers(workers):
    stream_fn = functools.partial(selected, length=10)
    parts = [_numbers(StreamWrapper(stream_fn, workers=workers, rank=r, world_size=3)) for r in range(3)]
    # With ordered merging, rank r gets exactly the global batches r, r + W, r + 2W, ... in order.
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_an_in_process_rank_gets_the_pass_number():
    stream = StreamWrapper(functools.partial(selected, length=4), rank=1, world_size=2, epoch_size=3)
    epochs = [[(b["number"][0], b["epoch"][0]) for b in stream] for _ in range(2)]
    assert epochs == [[(1, 0), (3, 0), (1, 1)], [(3, 1), (1, 2), (3, 2)]]


def test_epoch_size_gives_every_rank_the_same_count():
    counts = []
    for rank in range(3):
        stream = StreamWrapper(functools.partial(selected, length=10), rank=rank, world_size=3, epoch_size=4)
        counts.append(len(list(stream)))
    assert counts == [4, 4, 4]


def test_ranks_without_epoch_size_warn_of_unequal_counts(caplog):
    with caplog.at_level(logging.WARNING, logger="emloop_ds"):
        StreamWrapper(selected, rank=0, world_size=2)
    assert "may differ by one" in caplog.text
    assert "epoch_size=N" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emloop_ds"):
        StreamWrapper(selected, rank=0, world_size=2, epoch_size=5)
        StreamWrapper(selected)
    assert caplog.text == ""


def test_a_stream_that_is_not_shardable_is_refused_with_ranks():
    def plain():
        yield {"x": [1]}

    with pytest.raises(ConfigError, match="not shardable, so the 2 ranks cannot split it"):
        StreamWrapper(plain, rank=0, world_size=2)


@pytest.mark.parametrize(("rank", "world_size"), [(2, 2), (-1, 2), (0, 0)])
def test_rank_outside_the_world_is_refused(rank, world_size):
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        StreamWrapper(selected, rank=rank, world_size=world_size)


def test_rank_must_be_an_int():
    with pytest.raises(TypeError, match="rank must be an int"):
        StreamWrapper(selected, rank="0", world_size=2)  # type: ignore[call-overload]
