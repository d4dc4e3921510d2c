"""Test resume with worker processes: the rest of the run is exactly what was not delivered."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from emloop_ds import StreamWrapper
from tests.core.resume_reading import read_saving_state
from tests.core.shard_streams import selected

LENGTH = 9
TOTAL = 2 * LENGTH + 3


def _read(stream: StreamWrapper, total: int, key: Callable[[Any], Any]) -> list[tuple[int, Any]]:
    """Read ``total`` batches as (epoch index in this read, key of the batch), then close the wrapper."""
    out: list[tuple[int, Any]] = []
    try:
        with stream:
            for epoch in range(total + 1):
                if len(out) == total:
                    break
                for batch in stream:
                    out.append((epoch, key(batch)))
                    if len(out) == total:
                        break
    finally:
        stream.close()
    return out


def _resumed_run(make: Callable[[], StreamWrapper], stop_at: int, key: Callable[[Any], Any]) -> list[Any]:
    first = make()
    head = read_saving_state(first, stop_at, key)
    second = make()
    second.load_state_dict(json.loads(json.dumps(head[1])))
    return head[0] + [k for _, k in _read(second, TOTAL - stop_at, key)]


def _number_and_pass(batch: Any) -> tuple[int, int]:
    return batch["number"][0], batch["epoch"][0]


@pytest.mark.usefixtures("workers_import_tests")
@pytest.mark.parametrize("epoch_size", [-1, 4])
@pytest.mark.parametrize("stop_at", [0, 3, LENGTH, LENGTH + 1, 2 * LENGTH - 1])
def test_ordered_workers_resume_exactly(epoch_size, stop_at):
    def make() -> StreamWrapper:
        return StreamWrapper(functools.partial(selected, length=LENGTH), workers=2, epoch_size=epoch_size)

    reference = [k for _, k in _read(make(), TOTAL, _number_and_pass)]
    assert _resumed_run(make, stop_at, _number_and_pass) == reference


@pytest.mark.usefixtures("workers_import_tests")
@pytest.mark.parametrize("stop_at", [2, LENGTH, LENGTH + 5])
def test_unordered_workers_resume_with_the_undelivered_batches_only(stop_at):
    def make() -> StreamWrapper:
        return StreamWrapper(functools.partial(selected, length=LENGTH), workers=2, ordered=False)

    got = _resumed_run(make, stop_at, _number_and_pass)
    # Per pass, each batch exactly once: none repeated, none missing.
    by_pass = Counter(got)
    assert set(by_pass.values()) == {1}
    assert sorted(got) == sorted((n, p) for p in range(3) for n in range(LENGTH))[:TOTAL] or len(got) == TOTAL
    for pass_number in (0, 1):
        assert sorted(n for n, p in got if p == pass_number) == list(range(LENGTH))


@pytest.mark.usefixtures("workers_import_tests")
@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("is_end_read", [False, True])
def test_epochs_resumed_at_a_pass_end_on_workers_are_numbered_as_without_the_resume(ordered, is_end_read):
    def make() -> StreamWrapper:
        return StreamWrapper(functools.partial(selected, length=LENGTH), workers=2, ordered=ordered)

    first = make()
    try:
        with first:
            if is_end_read:  # the epoch's end was read: the state knows that the epoch ended
                assert len(list(first)) == LENGTH
            else:  # only its last batch: the resumed stream finds out
                for _ in range(LENGTH):
                    next(first)
            state = first.state_dict()
    finally:
        first.close()
    assert (state["epoch"], state["batch"]) == ((1, 0) if is_end_read else (0, LENGTH))
    second = make()
    second.load_state_dict(state)
    try:
        with second:
            assert sorted(_number_and_pass(batch) for batch in second) == [(n, 1) for n in range(LENGTH)]
            assert (second.state_dict()["epoch"], second.state_dict()["batch"]) == (2, 0)
    finally:
        second.close()


@pytest.mark.usefixtures("workers_import_tests")
def test_a_state_of_another_worker_count_is_refused():
    from emloop_ds import ConfigError

    state = StreamWrapper(functools.partial(selected, length=LENGTH), workers=2).state_dict()
    other = StreamWrapper(functools.partial(selected, length=LENGTH), workers=3)
    with pytest.raises(ConfigError, match="stream state is for workers 2, but this wrapper has workers 3"):
        other.load_state_dict(state)
    unordered = StreamWrapper(functools.partial(selected, length=LENGTH), workers=2, ordered=False)
    with pytest.raises(ConfigError, match="stream state is for ordered True"):
        unordered.load_state_dict(state)
