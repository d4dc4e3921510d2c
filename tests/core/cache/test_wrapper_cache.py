"""Test StreamWrapper(..., cache=...) and BaseDataset.cached against real files and real processes."""

from __future__ import annotations

import functools
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emloop_ds import ConfigError, StreamWrapper, create_dataset, load_config
from emloop_ds.core.cache import CacheReader, is_sealed
from tests.core.cache.cache_datasets import MixedDataset, calls
from tests.core.cache.helpers import assert_same_batch, example_keys, mixed_batches

BATCHES = 7
EXAMPLES = 4 * (BATCHES - 1) + 3


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``tmp_path/cache`` the cache root of this process and of the workers it starts."""
    root = tmp_path / "cache"
    monkeypatch.setenv("EMLOOP_DS_CACHE", str(root))
    return root


def make_dataset(folder: Path, **options: Any) -> MixedDataset:
    """Build ``MixedDataset`` from a config file, logging its ``decoded`` passes into ``folder``."""
    lines = [f"  {key}: {json.dumps(value)}" for key, value in {"log_dir": str(folder), **options}.items()]
    config = folder / "config.yaml"
    config.write_text(
        "\n".join(["dataset:", "  class: tests.core.cache.cache_datasets.MixedDataset", *lines]) + "\n",
        encoding="utf-8",
    )
    dataset = create_dataset(load_config(config))
    assert isinstance(dataset, MixedDataset)
    return dataset


def read_epochs(wrapper: StreamWrapper, epochs: int) -> list[list[Any]]:
    """Read ``epochs`` epochs inside ``with``, then close the wrapper."""
    try:
        with wrapper:
            return [list(wrapper) for _ in range(epochs)]
    finally:
        wrapper.close()


def assert_same_epoch(actual: list[Any], expected: list[Any]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert_same_batch(got, want)


def leftovers(root: Path) -> list[Path]:
    """Return the temporary folders of unsealed caches under ``root``."""
    return sorted(root.rglob(".*.tmp-*"))


@pytest.mark.parametrize("buffer_size", [0, 3])
def test_first_pass_writes_the_cache_and_later_passes_and_runs_read_it(tmp_path, cache_root, buffer_size):
    dataset = make_dataset(tmp_path)
    wrapper = StreamWrapper(dataset.decoded_stream, "decoded", cache=True, buffer_size=buffer_size)
    assert wrapper.cache_mode == "write"
    epochs = read_epochs(wrapper, 3)
    for epoch in epochs:  # values, dtypes, containers and the smaller last batch, every pass
        assert_same_epoch(epoch, mixed_batches(BATCHES))
    assert len(calls(tmp_path)) == 1
    assert is_sealed(wrapper.cache_path)
    assert wrapper.cache_path.is_relative_to(cache_root)

    again = StreamWrapper(make_dataset(tmp_path).decoded_stream, "decoded", cache=True)
    assert again.cache_mode == "read"
    assert_same_epoch(read_epochs(again, 1)[0], mixed_batches(BATCHES))
    assert len(calls(tmp_path)) == 1  # the later process never called the stream


def test_another_config_uses_another_cache(tmp_path, cache_root):
    read_epochs(StreamWrapper(make_dataset(tmp_path).decoded_stream, cache=True), 1)
    other = StreamWrapper(make_dataset(tmp_path, batches=3).decoded_stream, cache=True)
    assert other.cache_mode == "write"
    assert len(read_epochs(other, 1)[0]) == 3


def test_a_pass_not_ended_leaves_no_cache_and_the_next_run_writes_it(tmp_path, cache_root):
    dataset = make_dataset(tmp_path)
    wrapper = StreamWrapper(dataset.decoded_stream, cache=True, epoch_size=3)
    assert [len(epoch) for epoch in read_epochs(wrapper, 1)] == [3]
    assert not is_sealed(wrapper.cache_path)
    assert leftovers(cache_root) == []
    again = StreamWrapper(dataset.decoded_stream, cache=True, epoch_size=3)
    assert again.cache_mode == "write"
    epochs = read_epochs(again, 4)  # 12 batches: the first pass ends inside epoch 3
    flat = [batch for epoch in epochs for batch in epoch]
    assert example_keys(flat[:BATCHES]) == example_keys(mixed_batches(BATCHES))
    assert example_keys(flat[BATCHES:]) == example_keys(mixed_batches(BATCHES)[:5])
    assert is_sealed(again.cache_path)


def test_a_callable_needs_a_folder_and_partials_get_their_own_caches(tmp_path):
    def stream() -> Iterator[dict[str, Any]]:
        yield {"x": [1]}

    with pytest.raises(ConfigError, match=r"cache='DIR'"):
        StreamWrapper(stream, cache=True)
    first = StreamWrapper(functools.partial(mixed_batches, 3), cache=tmp_path)
    second = StreamWrapper(functools.partial(mixed_batches, 5), cache=tmp_path)
    assert first.cache_path != second.cache_path
    assert [len(read_epochs(w, 2)[1]) for w in (first, second)] == [3, 5]
    assert StreamWrapper(functools.partial(mixed_batches, 5), cache=tmp_path).cache_mode == "read"


def test_shuffle_needs_a_cache_and_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="need a cache"):
        StreamWrapper(functools.partial(mixed_batches, 3), shuffle=True)
    with pytest.raises(TypeError, match="seed must be an int"):
        StreamWrapper(functools.partial(mixed_batches, 3), cache=tmp_path, seed="7")
    with pytest.raises(TypeError, match="cache must be"):
        StreamWrapper(functools.partial(mixed_batches, 3), cache=3)


def test_shuffled_passes_are_permutations_of_all_examples_the_same_in_every_run(tmp_path, cache_root):
    dataset = make_dataset(tmp_path)
    first = read_epochs(StreamWrapper(dataset.decoded_stream, cache=True, shuffle=True, seed=5), 4)
    assert example_keys(first[0]) == example_keys(mixed_batches(BATCHES))  # written through: stream order
    everything = sorted(example_keys(mixed_batches(BATCHES)))
    passes = [example_keys(epoch) for epoch in first[1:]]
    for keys in passes:
        assert sorted(keys) == everything
    assert len({tuple(keys) for keys in passes}) == 3
    assert [len(batch["label"]) for batch in first[1]] == [4] * (EXAMPLES // 4) + [EXAMPLES % 4]

    later = read_epochs(StreamWrapper(dataset.decoded_stream, cache=True, shuffle=True, seed=5), 4)
    assert [example_keys(epoch) for epoch in later[1:]] == passes  # pass p is the same in every run
    other_seed = read_epochs(StreamWrapper(dataset.decoded_stream, cache=True, shuffle=True, seed=6), 2)
    assert example_keys(other_seed[1]) != passes[0]


def test_a_cache_that_cannot_be_written_warns_once_and_the_stream_is_read(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    stream = functools.partial(mixed_batches, 3)
    wrapper = StreamWrapper(stream, "s", cache=blocker / "cache")
    with caplog.at_level(logging.WARNING, logger="emloop_ds"):
        epochs = read_epochs(wrapper, 3)
    for epoch in epochs:
        assert_same_epoch(epoch, mixed_batches(3))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "is not written" in warnings[0].getMessage()
    assert wrapper.cache_mode is None


def test_a_source_arrow_cannot_hold_warns_and_removes_what_was_written(tmp_path, cache_root, caplog):
    dataset = make_dataset(tmp_path)
    wrapper = StreamWrapper(dataset.objects_stream, cache=True)
    with caplog.at_level(logging.WARNING, logger="emloop_ds"):
        epochs = read_epochs(wrapper, 2)
    assert [[batch["label"] for batch in epoch] for epoch in epochs] == [[[0], [1], [2]]] * 2
    assert any("thing" in record.getMessage() for record in caplog.records)
    assert not is_sealed(wrapper.cache_path)
    assert leftovers(cache_root) == []


def test_a_damaged_cache_is_written_again_with_a_warning(tmp_path, cache_root, caplog):
    dataset = make_dataset(tmp_path)
    path = StreamWrapper(dataset.decoded_stream, cache=True).cache_path
    read_epochs(StreamWrapper(dataset.decoded_stream, cache=True), 1)
    data = path / "data.arrow"
    data.write_bytes(data.read_bytes()[:-10])  # truncated
    with caplog.at_level(logging.WARNING, logger="emloop_ds"):
        wrapper = StreamWrapper(dataset.decoded_stream, cache=True)
    assert wrapper.cache_mode == "write"
    assert "truncated" in caplog.text
    assert_same_epoch(read_epochs(wrapper, 2)[1], mixed_batches(BATCHES))
    assert CacheReader.open(path).verify() == []


@pytest.mark.usefixtures("workers_import_tests")
def test_write_through_on_workers_equals_write_through_in_process(tmp_path, cache_root):
    dataset = make_dataset(tmp_path)
    on_workers = StreamWrapper(dataset.decoded_stream, cache=tmp_path / "a", workers=2)
    epochs = read_epochs(on_workers, 3)
    for epoch in epochs:
        assert_same_epoch(epoch, mixed_batches(BATCHES))
    assert len(calls(tmp_path)) == 2  # one shard per worker, in the first pass only
    in_process = StreamWrapper(dataset.decoded_stream, cache=tmp_path / "b")
    read_epochs(in_process, 1)
    with CacheReader.open(on_workers.cache_path) as left, CacheReader.open(in_process.cache_path) as right:
        assert left.info.batch_lengths == right.info.batch_lengths
        for got, want in zip(left.batches(), right.batches(), strict=True):
            assert_same_batch(got, want)

    sealed = StreamWrapper(dataset.decoded_stream, cache=tmp_path / "a", workers=2)
    assert sealed.cache_mode == "read"
    with sealed:
        assert_same_epoch(list(sealed), mixed_batches(BATCHES))
        assert sealed.shard_engine is None  # no worker was started for a sealed cache
    sealed.close()


@pytest.mark.usefixtures("workers_import_tests")
@pytest.mark.parametrize("shuffle", [False, True])
def test_cached_from_two_workers_with_a_missing_cache_builds_once(tmp_path, cache_root, shuffle):
    dataset = make_dataset(tmp_path, shuffle=shuffle)
    epochs = read_epochs(StreamWrapper(dataset.train_stream, workers=2), 3)
    assert len(calls(tmp_path)) == 1  # one build, whichever worker took the lock first
    everything = example_keys(mixed_batches(BATCHES))
    for epoch in epochs:  # the shards partition each pass; in order, the merge is the cache's order
        keys = example_keys(epoch)
        assert sorted(keys) == sorted(everything)
        if not shuffle:
            assert keys == everything
    if shuffle:
        assert len({tuple(example_keys(epoch)) for epoch in epochs}) == 3


def test_cached_in_process_reads_each_shard_and_pass(tmp_path, cache_root):
    from emloop_ds import Shard

    dataset = make_dataset(tmp_path, shuffle=True)
    for epoch in range(3):
        parts = [list(dataset.cached("decoded", shard=Shard(i, 3, epoch), shuffle=True)) for i in range(3)]
        keys = [key for part in parts for key in example_keys(part)]
        assert sorted(keys) == sorted(example_keys(mixed_batches(BATCHES)))
    assert len(calls(tmp_path)) == 1
    with pytest.raises(ConfigError, match="cached\\('decoded'\\)"):
        dataset.cached("decoded_stream")


def test_ranks_read_equal_disjoint_parts_of_one_cache(tmp_path, cache_root, caplog):
    dataset = make_dataset(tmp_path)
    with caplog.at_level(logging.INFO, logger="emloop_ds"):
        ranks = [
            read_epochs(StreamWrapper(dataset.decoded_stream, cache=True, rank=r, world_size=2), 2)
            for r in range(2)
        ]
    assert len(calls(tmp_path)) == 1  # rank 0 built the whole cache; rank 1 read it
    assert [len(epoch) for rank in ranks for epoch in rank] == [3] * 4  # 7 batches: 3 each, 1 dropped
    assert "the last 1 are dropped" in caplog.text
    for epoch in range(2):
        keys = [example_keys(ranks[r][epoch]) for r in range(2)]
        assert not set(keys[0]) & set(keys[1])
    batches = mixed_batches(BATCHES)
    assert example_keys(ranks[1][0]) == example_keys([batches[1], batches[3], batches[5]])


def test_shuffled_ranks_drop_other_examples_each_pass(tmp_path, cache_root):
    dataset = make_dataset(tmp_path)
    ranks = [
        read_epochs(StreamWrapper(dataset.decoded_stream, cache=True, shuffle=True, rank=r, world_size=2), 3)
        for r in range(2)
    ]
    dropped = []
    for epoch in range(3):
        seen = Counter(key for r in range(2) for key in example_keys(ranks[r][epoch]))
        assert max(seen.values()) == 1
        assert [len(ranks[r][epoch]) for r in range(2)] == [3, 3]
        dropped.append(frozenset(set(example_keys(mixed_batches(BATCHES))) - set(seen)))
    assert len(set(dropped)) > 1


@pytest.mark.parametrize("prebuilt", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("stop_at", [2, BATCHES, BATCHES + 3, 2 * BATCHES])
def test_resume_from_a_cache_continues_exactly(tmp_path, shuffle, stop_at, prebuilt):
    """Resumed inside the pass that writes the cache, or in any pass read from it, in order or shuffled."""
    dataset = make_dataset(tmp_path)

    def make(folder: str) -> StreamWrapper:
        return StreamWrapper(
            dataset.decoded_stream, cache=tmp_path / folder, shuffle=shuffle, seed=1, epoch_size=5
        )

    if prebuilt:
        for folder in ("reference", "run"):
            read_epochs(make(folder), 2)
    reference = [example_keys([b]) for epoch in read_epochs(make("reference"), 6) for b in epoch]
    first = make("run")
    head = []
    with first:
        while len(head) < stop_at:
            for batch in first:
                head.append(example_keys([batch]))
                if len(head) == stop_at:
                    break
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    second = make("run")
    second.load_state_dict(state)
    tail = [example_keys([b]) for epoch in read_epochs(second, 7) for b in epoch]
    assert (head + tail)[: len(reference)] == reference
    assert is_sealed(second.cache_path)


@pytest.mark.usefixtures("workers_import_tests")
def test_a_cached_state_resumes_with_workers_and_refuses_another_shuffle(tmp_path, cache_root):
    dataset = make_dataset(tmp_path)

    def make(**options: Any) -> StreamWrapper:
        return StreamWrapper(dataset.decoded_stream, cache=True, workers=2, epoch_size=4, **options)

    read_epochs(make(shuffle=True), 2)  # writes the cache: every run below reads it
    reference = [example_keys([b]) for epoch in read_epochs(make(shuffle=True), 4) for b in epoch]
    first = make(shuffle=True)
    with first:
        head = [example_keys([batch]) for batch in first]  # the first epoch: 4 batches
        head += [example_keys([next(first)]) for _ in range(2)]
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    with pytest.raises(ConfigError, match="shuffle"):
        make().load_state_dict(state)
    with pytest.raises(ConfigError, match="seed"):
        make(shuffle=True, seed=1).load_state_dict(state)
    second = make(shuffle=True)
    second.load_state_dict(state)
    tail = [example_keys([b]) for epoch in read_epochs(second, 4) for b in epoch]
    assert (head + tail)[: len(reference)] == reference
