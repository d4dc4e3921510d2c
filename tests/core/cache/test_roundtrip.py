"""A cache gives back the source's batches exactly, in order, and shuffled passes of all its examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from emloop_ds.core.cache import CacheReader, CacheWriter, is_sealed, remove_cache
from emloop_ds.core.stream.shard import Shard

from .helpers import assert_same_batch, build, example_keys, mixed_batches


@pytest.mark.parametrize("chunk_rows", [65536, 5, 1])
def test_in_order_pass_equals_the_source_exactly(tmp_path: Path, chunk_rows: int) -> None:
    source = mixed_batches()
    info = build(tmp_path / "cache", source, chunk_rows=chunk_rows)
    assert (info.batches, info.examples) == (7, 27)
    with CacheReader.open(tmp_path / "cache") as reader:
        got = list(reader.batches())
    assert len(got) == len(source)
    for actual, expected in zip(got, source, strict=True):
        assert_same_batch(actual, expected)


def test_shapes_that_change_between_batches_are_stored_variable_length(tmp_path: Path) -> None:
    source = [{"x": np.ones((2, 3, 4), np.uint8) * k, "y": np.arange(2)} for k in range(3)]
    source.append({"x": np.full((2, 5, 1), 7, np.uint8), "y": np.arange(2)})
    info = build(tmp_path / "cache", source, chunk_rows=3)
    assert info.sources[0].item_shape is None
    with CacheReader.open(tmp_path / "cache") as reader:
        for actual, expected in zip(reader.batches(), source, strict=True):
            assert_same_batch(actual, expected)
        shuffled = list(reader.shuffled_batches(0))
    assert sorted(int(x.sum()) for batch in shuffled for x in batch["x"]) == sorted(
        [0, 0, 12, 12, 24, 24, 35, 35]
    )


def test_in_order_fixed_batch_is_a_view_of_the_memory_map(tmp_path: Path) -> None:
    build(tmp_path / "cache", [{"x": np.ones((8, 16), np.float32)} for _ in range(4)])
    with CacheReader.open(tmp_path / "cache") as reader:
        batch = next(reader.batches())
        assert not batch["x"].flags.owndata
        assert not batch["x"].flags.writeable


def test_start_and_shard_select_the_same_batches_as_slicing(tmp_path: Path) -> None:
    source = mixed_batches(count=9)
    build(tmp_path / "cache", source, chunk_rows=6)
    with CacheReader.open(tmp_path / "cache") as reader:
        whole = example_keys(reader.batches())
        shard = Shard(1, 3)
        assert example_keys(reader.batches(shard=shard)) == example_keys(shard.select(source))
        assert example_keys(reader.batches(shard=shard, start=2)) == example_keys(shard.select(source)[2:])
        assert example_keys(reader.batches(start=8)) == whole[-3:]
        assert list(reader.batches(start=9)) == []


def test_each_shuffled_pass_is_a_new_permutation_of_all_examples(tmp_path: Path) -> None:
    source = mixed_batches(count=20)
    build(tmp_path / "cache", source, chunk_rows=7)
    expected = sorted(example_keys(source))
    with CacheReader.open(tmp_path / "cache") as reader:
        passes = [example_keys(reader.shuffled_batches(number, seed=3)) for number in range(3)]
        again = example_keys(reader.shuffled_batches(1, seed=3))
        other_seed = example_keys(reader.shuffled_batches(1, seed=4))
        sizes = [len(batch["label"]) for batch in reader.shuffled_batches(0, seed=3)]
        rebatched = [len(batch["label"]) for batch in reader.shuffled_batches(0, seed=3, batch_size=10)]
        first = next(reader.shuffled_batches(0, seed=3))
    for keys in passes:
        assert sorted(keys) == expected
    assert passes[0] != passes[1] != passes[2]
    assert again == passes[1]
    assert other_seed != passes[1]
    assert sizes == [4] * 19 + [3]
    assert rebatched == [10] * 7 + [9]
    # every source of a shuffled example stays with its label
    for label, text in zip(first["label"], first["text"], strict=True):
        assert text == f"example {label // 100}/{label % 100} é"


def test_shards_partition_each_shuffled_pass(tmp_path: Path) -> None:
    build(tmp_path / "cache", mixed_batches(count=11), chunk_rows=9)
    with CacheReader.open(tmp_path / "cache") as reader:
        whole = [sorted(batch["label"].tolist()) for batch in reader.shuffled_batches(2)]
        parts = [
            [sorted(batch["label"].tolist()) for batch in reader.shuffled_batches(2, shard=Shard(index, 3))]
            for index in range(3)
        ]
        skipped = [
            sorted(b["label"].tolist()) for b in reader.shuffled_batches(2, shard=Shard(1, 3), start=1)
        ]
    for index in range(3):
        assert parts[index] == whole[index::3]
    assert skipped == whole[1::3][1:]


def test_same_seed_gives_the_same_pass_in_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    build(tmp_path / "cache", mixed_batches(count=10))
    script = (
        "import sys; from pathlib import Path; from emloop_ds.core.cache import CacheReader\n"
        "r = CacheReader.open(Path(sys.argv[1]))\n"
        "print([int(x) for b in r.shuffled_batches(5, seed=9) for x in b['label']])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    with CacheReader.open(tmp_path / "cache") as reader:
        assert out.stdout.strip() == str(example_keys(reader.shuffled_batches(5, seed=9)))


def test_cache_file_is_plain_arrow_with_one_row_per_example(tmp_path: Path) -> None:
    info = build(tmp_path / "cache", mixed_batches())
    table = pa.ipc.open_file(pa.memory_map(str(tmp_path / "cache" / "data.arrow"))).read_all()
    assert table.num_rows == info.examples
    assert table.column("label").to_pylist()[:2] == [0, 1]
    assert table.column("text").to_pylist()[0] == "example 0/0 é"
    assert table.column("image.shape").to_pylist()[0] == [2, 3]
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["batch_lengths"] == [4] * 6 + [3]
    assert manifest["files"]["data.arrow"]["bytes"] == (tmp_path / "cache" / "data.arrow").stat().st_size


def test_empty_stream_seals_an_empty_cache(tmp_path: Path) -> None:
    info = build(tmp_path / "cache", [])
    assert (info.batches, info.examples) == (0, 0)
    with CacheReader.open(tmp_path / "cache") as reader:
        assert list(reader.batches()) == []
        assert list(reader.shuffled_batches(0)) == []


def test_abort_leaves_nothing_and_remove_cache_unseals(tmp_path: Path) -> None:
    writer = CacheWriter(tmp_path / "cache", fingerprint="f", description="")

    def fail_inside() -> None:
        with writer:
            writer.append({"x": np.arange(3)})
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        fail_inside()
    writer.abort()  # idempotent
    assert list(tmp_path.iterdir()) == []
    build(tmp_path / "cache", [{"x": np.arange(3)}])
    assert is_sealed(tmp_path / "cache")
    remove_cache(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    remove_cache(tmp_path / "cache")


def test_progress_counters(tmp_path: Path) -> None:
    with CacheWriter(tmp_path / "cache", fingerprint="f", description="") as writer:
        writer.append({"x": np.zeros((4, 10), np.float64)})
        writer.append({"x": np.zeros((2, 10), np.float64)})
        assert (writer.batches, writer.examples, writer.bytes_written) == (2, 6, 480)
        writer.seal()


def test_a_stream_that_reuses_its_buffer_is_cached_as_it_was_yielded(tmp_path: Path) -> None:
    buffer = np.zeros((4, 3), np.int32)
    with CacheWriter(tmp_path / "cache", fingerprint="f", description="") as writer:
        for number in range(5):
            buffer[:] = number
            writer.append({"x": buffer})
        writer.seal()
    with CacheReader.open(tmp_path / "cache") as reader:
        assert [int(batch["x"][0, 0]) for batch in reader.batches()] == [0, 1, 2, 3, 4]


def test_many_chunks_replay_and_shuffle_exactly(tmp_path: Path) -> None:
    source = [
        {"label": np.arange(number * 5, number * 5 + 5), "x": np.ones((5, 7), np.uint8) * (number % 200)}
        for number in range(400)
    ]
    build(tmp_path / "cache", source, chunk_rows=16)
    with CacheReader.open(tmp_path / "cache") as reader:
        assert example_keys(reader.batches()) == list(range(2000))
        shuffled = example_keys(reader.shuffled_batches(3, batch_size=64))
        for batch in reader.shuffled_batches(2, batch_size=64):
            np.testing.assert_array_equal(batch["x"][:, 3], (batch["label"] // 5) % 200)
    assert sorted(shuffled) == list(range(2000))
    assert shuffled != list(range(2000))


def test_an_empty_batch_between_others_round_trips(tmp_path: Path) -> None:
    source = [{"x": np.arange(3.0)}, {"x": np.empty(0)}, {"x": np.arange(2.0)}]
    build(tmp_path / "cache", source)
    with CacheReader.open(tmp_path / "cache") as reader:
        for actual, expected in zip(reader.batches(), source, strict=True):
            assert_same_batch(actual, expected)


def test_batches_stay_readable_after_the_reader_closes(tmp_path: Path) -> None:
    build(tmp_path / "cache", [{"x": np.full((1000, 10), number, np.float32)} for number in range(4)])
    reader = CacheReader.open(tmp_path / "cache")
    batches = list(reader.batches())
    reader.close()
    assert [float(batch["x"].mean()) for batch in batches] == [0.0, 1.0, 2.0, 3.0]
