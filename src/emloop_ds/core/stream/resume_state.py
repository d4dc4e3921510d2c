"""Describe where a ``StreamWrapper`` is, as a small JSON-serialisable dict, and check one before resuming.

NOTE [resume position]
A state holds positions only: the epoch and the batches of it delivered, the pass of the stream, and per
shard (one in this process, one per worker otherwise) the batches of that pass delivered and whether it
still runs, with whose turn it is in an ordered merge; plus what identifies the stream and how it is
read (with a stream cache, whether it is shuffled and by which seed: NOTE [cached passes]). Delivered
means handed to the reader: batches that a buffer or a worker prepared but did not hand out are made
again after a resume, not lost. A state taken right after the last batch of a fixed-size epoch names the
next epoch's start; one taken right after a pass's last batch resumes with the next pass rather than an
empty epoch, and, without ``epoch_size``, counts the saved epoch as ended once the resumed pass is found
empty (``EpochCutter.has_ended_resumed_epoch``, ``ShardMerge._end_pass``), so that epoch numbers go on as
without the resume. A shardable stream resumes in O(1), called with ``Shard(..., start=batches of the
pass delivered)``; any other stream makes and drops those batches (``EpochCutter._skip``); worker shards
are shardable by construction. A cached wrapper is one shard whatever its workers: it reads the cache here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from emloop_ds.core.errors import ConfigError

__all__ = ["STATE_VERSION", "ResumeState", "stream_identity"]

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ResumeState:
    """Name a wrapper's position and what must match for a new wrapper to continue from it."""

    version: int
    stream: str
    fingerprint: str
    epoch_size: int
    workers: int
    ordered: bool
    rank: int
    world_size: int
    cache: bool
    shuffle: bool
    seed: int
    epoch: int
    batch: int
    pass_number: int
    shard_batches: list[int]
    shard_running: list[bool]
    turn: int

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a plain dict of str, int and bool values (and lists of them, copied).

        Built field by field: ``dataclasses.asdict`` deep-copies recursively, 10x the cost of a state_dict.
        """
        state = {name: getattr(self, name) for name in _FIELD_NAMES}
        state["shard_batches"] = list(self.shard_batches)
        state["shard_running"] = list(self.shard_running)
        return state

    @classmethod
    def from_dict(cls, state: object) -> ResumeState:
        """Return the state held by ``state``, a dict made by ``to_dict``.

        Raises:
            ConfigError: if it has other keys, or values of other types, or negative positions.
        """
        if not isinstance(state, Mapping):
            raise ConfigError(f"a stream state must be a dict from state_dict(), not {type(state).__name__}")
        expected = {field.name: field.type for field in fields(cls)}
        if set(state) != set(expected):
            missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
            raise ConfigError(
                f"this is not a stream state from state_dict(): missing keys {missing}, unknown keys "
                f"{extra}; pass a state saved from StreamWrapper.state_dict()"
            )
        for name, kind in expected.items():
            value = state[name]
            is_list = str(kind).startswith("list[")
            wanted = _TYPES[str(kind).removeprefix("list[").removesuffix("]")]
            items = value if is_list and isinstance(value, list) else [value]
            if (is_list and not isinstance(value, list)) or not all(_is_a(item, wanted) for item in items):
                raise ConfigError(
                    f"stream state key {name!r} must be {kind}, not {type(value).__name__} ({value!r}); "
                    "pass a state saved from StreamWrapper.state_dict()"
                )
            if wanted is int and name != "epoch_size" and any(item < 0 for item in items):
                raise ConfigError(f"stream state key {name!r} must be 0 or more, not {value}")
        shards = 1 if state["cache"] else max(int(state["workers"]), 1)  # a cache is read in this process
        if len(state["shard_batches"]) != shards or len(state["shard_running"]) != shards:
            raise ConfigError(
                f"stream state has {len(state['shard_batches'])} shard positions for {shards} shards; "
                "pass a state saved from StreamWrapper.state_dict()"
            )
        return cls(**dict(state))

    def check_matches(self, expected: ResumeState) -> None:
        """Refuse this state for a wrapper whose own state at the start is ``expected``.

        Raises:
            ConfigError: naming the first field that differs.
        """
        if self.version != STATE_VERSION:
            raise ConfigError(
                f"stream state has version {self.version}; this emloop-ds reads version {STATE_VERSION}"
            )
        names = ("stream", "fingerprint", "epoch_size", "workers", "ordered", "rank", "world_size")
        for name in (*names, "cache", "shuffle", "seed"):
            saved, current = getattr(self, name), getattr(expected, name)
            if saved != current:
                raise ConfigError(
                    f"stream state is for {name} {saved!r}, but this wrapper has {name} {current!r}; "
                    "resume with the same stream, config and parameters as the run that saved it"
                )


_TYPES: dict[str, type] = {"int": int, "str": str, "bool": bool}
_FIELD_NAMES = tuple(field.name for field in fields(ResumeState))


def _is_a(value: object, wanted: type) -> bool:
    return isinstance(value, wanted) and (wanted is not int or not isinstance(value, bool))


def stream_identity(stream_fn: Callable[..., Any]) -> str:
    """Return a short fingerprint of ``stream_fn``: its dataset's class, config and method, or its name."""
    dataset = getattr(stream_fn, "__self__", None)
    method = getattr(stream_fn, "__name__", None)
    config = getattr(dataset, "_config_str", None)
    if dataset is not None and isinstance(config, str):
        kind = type(dataset)
        text = f"{kind.__module__}.{kind.__qualname__}\n{method}\n{config}"
    else:
        target = getattr(stream_fn, "func", stream_fn)  # a functools.partial names its function
        text = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(target).__name__)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
