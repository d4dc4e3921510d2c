"""Test StreamWrapper.state_dict and load_state_dict in this process: exact resume, O(1) seeks, refusals."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emloop_ds import ConfigError, Shard, StreamError, StreamWrapper

PASS_LENGTH = 7


def _selected(made: list[tuple[int, int]], shard: Shard = Shard(0, 1)) -> Iterator[dict[str, Any]]:
    """Yield the pass's batches through shard.select, recording each one made as (pass, number)."""
    for number in shard.select(range(PASS_LENGTH)):
        made.append((shard.epoch, number))
        yield {"number": [number], "pass": [shard.epoch]}


def _plain(made: list[tuple[int, int]]) -> Iterator[dict[str, Any]]:
    """Yield the same batches, but without a shard: a resume must make and drop the skipped ones."""
    for number in range(PASS_LENGTH):
        made.append((0, number))
        yield {"number": [number], "pass": [0]}  # a stream without a shard cannot know its pass


def _read(stream: StreamWrapper, total: int, on_batch: Callable[[], None] = lambda: None) -> list[Any]:
    """Read epochs until ``total`` batches: a list of (epoch index in this read, number, pass)."""
    out: list[Any] = []
    if total == 0:
        return out
    with stream:
        for epoch in range(total + 1):
            for batch in stream:
                out.append((epoch, batch["number"][0], batch["pass"][0]))
                on_batch()
                if len(out) == total:
                    return out
    return out


KINDS = {
    "unbuffered": {},
    "buffered": {"buffer_size": 3},
    "eager": {"buffer_size": 2, "eager": True},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("epoch_size", [-1, 5])
@pytest.mark.parametrize("stream_kind", ["selected", "plain"])
def test_a_resumed_wrapper_delivers_exactly_the_rest(kind, epoch_size, stream_kind):
    function = _selected if stream_kind == "selected" else _plain
    total = 3 * PASS_LENGTH + 2

    def make(made: list[tuple[int, int]]) -> StreamWrapper:
        return StreamWrapper(functools.partial(function, made), epoch_size=epoch_size, **KINDS[kind])

    reference = [(n, p) for _, n, p in _read(make([]), total)]
    # Every point: batch 0, mid-epoch, the last batch of an epoch, and passes cut by epoch_size.
    for stop_at in range(total):
        first = make([])
        states: list[dict[str, Any]] = [first.state_dict()]
        head = _read(first, stop_at, lambda first=first, states=states: states.append(first.state_dict()))
        state = json.loads(json.dumps(states[-1]))
        second = make([])
        second.load_state_dict(state)
        tail = _read(second, total - stop_at)
        assert [(n, p) for _, n, p in head + tail] == reference, f"resumed after {stop_at} batches"
        if epoch_size > 0:  # epochs have a known length: the numbering continues
            assert state["epoch"] * epoch_size + state["batch"] == stop_at


def test_a_state_after_a_whole_epoch_resumes_at_the_next_epoch_not_an_empty_one():
    made: list[tuple[int, int]] = []
    first = StreamWrapper(functools.partial(_selected, made))
    assert len(list(first)) == PASS_LENGTH
    state = first.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 0)
    second = StreamWrapper(functools.partial(_selected, made))
    second.load_state_dict(state)
    assert [b["pass"][0] for b in second] == [1] * PASS_LENGTH
    assert (second.state_dict()["epoch"], second.state_dict()["batch"]) == (2, 0)


def test_a_state_right_after_the_last_batch_of_a_pass_skips_no_epoch():
    made: list[tuple[int, int]] = []
    first = StreamWrapper(functools.partial(_selected, made))
    for _ in range(PASS_LENGTH):  # the last batch is out, the epoch end not yet read
        next(first)
    second = StreamWrapper(functools.partial(_selected, made))
    second.load_state_dict(first.state_dict())
    assert [b["pass"][0] for b in second] == [1] * PASS_LENGTH


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("is_end_read", [False, True])
def test_epochs_resumed_at_a_pass_end_are_numbered_as_without_the_resume(kind, is_end_read):
    def make() -> StreamWrapper:
        return StreamWrapper(functools.partial(_selected, []), **KINDS[kind])

    first = make()
    with first:
        if is_end_read:
            assert len(list(first)) == PASS_LENGTH
        else:  # without epoch_size the state cannot know that the pass ended
            for _ in range(PASS_LENGTH):
                next(first)
    state = first.state_dict()
    assert (state["epoch"], state["batch"]) == ((1, 0) if is_end_read else (0, PASS_LENGTH))
    second = make()
    second.load_state_dict(state)
    with second:
        for _ in range(3):
            assert next(second)["pass"] == [1]
        assert (second.state_dict()["epoch"], second.state_dict()["batch"]) == (1, 3)
        assert len(list(second)) == PASS_LENGTH - 3
        assert (second.state_dict()["epoch"], second.state_dict()["batch"]) == (2, 0)
        assert [b["pass"][0] for b in second] == [2] * PASS_LENGTH
        assert (second.state_dict()["epoch"], second.state_dict()["batch"]) == (3, 0)


def test_a_select_stream_resumes_without_making_the_skipped_batches():
    made: list[tuple[int, int]] = []
    length = 1_000_000

    def huge(shard: Shard = Shard(0, 1)) -> Iterator[dict[str, Any]]:
        for number in shard.select(range(length)):
            made.append((shard.epoch, number))
            yield {"number": [number]}

    first = StreamWrapper(huge)
    state = first.state_dict()
    state.update(batch=900_000, shard_batches=[900_000])
    second = StreamWrapper(huge)
    second.load_state_dict(state)
    assert next(second)["number"] == [900_000]
    assert made == [(0, 900_000)]


def test_a_plain_stream_is_fast_forwarded_with_a_log_line(caplog):
    made: list[tuple[int, int]] = []
    first = StreamWrapper(functools.partial(_plain, made))
    for _ in range(4):
        next(first)
    second = StreamWrapper(functools.partial(_plain, []))
    second.load_state_dict(first.state_dict())
    with caplog.at_level(logging.INFO, logger="emloop_ds"):
        assert next(second)["number"] == [4]
    assert "making and dropping the 4 batches" in caplog.text
    assert "shard.select" in caplog.text


def test_state_dict_is_small_plain_json():
    stream = StreamWrapper(functools.partial(_selected, []), buffer_size=2)
    state = stream.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert len(json.dumps(state)) < 400


def _state_of(**kwargs: Any) -> dict[str, Any]:
    return StreamWrapper(functools.partial(_selected, []), **kwargs).state_dict()


@pytest.mark.parametrize(
    ("saved", "loaded", "field"),
    [
        ({"epoch_size": 5}, {"epoch_size": 6}, "epoch_size"),
        (
            {"rank": 0, "world_size": 2, "epoch_size": 3},
            {"rank": 1, "world_size": 2, "epoch_size": 3},
            "rank",
        ),
        ({"world_size": 2, "epoch_size": 3}, {"world_size": 3, "epoch_size": 3}, "world_size"),
        ({}, {"name": "other"}, "stream"),
    ],
)
def test_a_state_of_other_parameters_is_refused_naming_the_field(saved, loaded, field):
    state = _state_of(**saved)
    stream = StreamWrapper(functools.partial(_selected, []), **loaded)
    with pytest.raises(ConfigError, match=f"stream state is for {field} "):
        stream.load_state_dict(state)


def test_a_state_of_another_stream_function_is_refused():
    state = _state_of()
    stream = StreamWrapper(functools.partial(_plain, []))
    with pytest.raises(ConfigError, match="stream state is for fingerprint"):
        stream.load_state_dict(state)


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (lambda s: s.pop("epoch"), "missing keys \\['epoch'\\]"),
        (lambda s: s.update(extra=1), "unknown keys \\['extra'\\]"),
        (lambda s: s.update(batch="3"), "'batch' must be int, not str"),
        (lambda s: s.update(ordered=1), "'ordered' must be bool"),
        (lambda s: s.update(shard_batches=[-2]), "'shard_batches' must be 0 or more"),
        (lambda s: s.update(shard_batches=[1, 2]), "2 shard positions for 1 shards"),
        (lambda s: s.update(shard_running=[1]), "'shard_running' must be list\\[bool\\]"),
    ],
)
def test_a_hand_edited_state_is_refused(edit, phrase):
    state = _state_of()
    edit(state)
    with pytest.raises(ConfigError, match=phrase):
        StreamWrapper(functools.partial(_selected, [])).load_state_dict(state)


def test_not_a_dict_is_refused():
    with pytest.raises(ConfigError, match="must be a dict from state_dict"):
        StreamWrapper(functools.partial(_selected, [])).load_state_dict([1, 2])  # type: ignore[arg-type]


def test_loading_into_a_wrapper_already_read_is_refused():
    stream = StreamWrapper(functools.partial(_selected, []))
    state = stream.state_dict()
    next(stream)
    with pytest.raises(StreamError, match="was read already"):
        stream.load_state_dict(state)
