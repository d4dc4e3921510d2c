"""Test the stream state file: atomic replacement, and what a failed write leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from emloop_ds import Shard, StreamError, StreamWrapper
from emloop_ds.core.stream.state_file import StateFile, write_state_atomically


def _numbers(shard: Shard = Shard(0, 1)) -> Iterator[dict[str, list[int]]]:
    yield from ({"number": [number]} for number in shard.select(range(5)))


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "run.state"
    path.write_text("old")
    write_state_atomically(path, {"epoch": 1, "batch": 2})
    assert json.loads(path.read_text()) == {"epoch": 1, "batch": 2}
    assert sorted(tmp_path.iterdir()) == [path]


def test_a_failed_write_is_a_stream_error_and_leaves_what_was_there(tmp_path: Path) -> None:
    taken = tmp_path / "run.state"
    (taken / "inside").mkdir(parents=True)  # a folder where the file should be: the rename fails
    with pytest.raises(StreamError, match=r"cannot write the stream state to .*run\.state"):
        write_state_atomically(taken, {"epoch": 1})
    assert sorted(tmp_path.iterdir()) == [taken]
    with pytest.raises(StreamError, match="check that its folder exists"):
        write_state_atomically(tmp_path / "missing" / "run.state", {"epoch": 1})


def test_a_state_file_saves_every_n_batches_and_resumes_a_new_wrapper(tmp_path: Path) -> None:
    path = tmp_path / "run.state"
    state_file = StateFile(path, every=2)
    assert state_file.read() is None
    wrapper = StreamWrapper(_numbers, "numbers")
    for expected in (None, 2, 2, 4):
        next(wrapper)
        state_file.count_batch(wrapper)
        assert (json.loads(path.read_text())["batch"] if path.exists() else None) == expected
    resumed = StateFile(path)
    assert resumed.read() == {"epoch": 0, "batch": 4}
    again = StreamWrapper(_numbers, "numbers")
    resumed.resume(again)
    assert [batch["number"][0] for batch in again] == [4]
    with pytest.raises(ValueError, match="every of 1 or more"):
        StateFile(path, every=0)
