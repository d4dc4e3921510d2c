"""Define ``Shard``: which part of a stream's batches one worker produces, and its reproducible seeds."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Shard", "is_shardable"]

_Item = TypeVar("_Item")


@dataclass(frozen=True, slots=True)
class Shard:
    """Name part ``index`` of ``count`` of a stream's batches, in the pass numbered ``epoch``.

    ``Shard(0, 1)`` is the whole stream. A shardable stream method takes it as its ``shard`` keyword::

        def train_stream(self, shard=Shard(0, 1)):
            for start in shard.select(range(0, len(self._labels), self._batch_size)):
                yield self._batch(start)

    ``start`` is the number of this shard's batches of the pass already delivered, for a stream resumed
    mid-pass: ``select`` leaves them out, so a stream that picks its batches through it resumes without
    making the skipped ones.
    """

    index: int
    count: int
    epoch: int = 0
    start: int = 0

    def __post_init__(self) -> None:
        """Reject a shard outside ``0 <= index < count`` or a negative epoch."""
        for name in ("index", "count", "epoch", "start"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Shard {name} must be an int, not {type(value).__name__}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"Shard(index={self.index}, count={self.count}) needs 0 <= index < count")
        if self.epoch < 0:
            raise ValueError(f"Shard epoch must be 0 or more, not {self.epoch}")
        if self.start < 0:
            raise ValueError(f"Shard start must be 0 or more, not {self.start}")

    def select(self, sequence: Sequence[_Item]) -> Sequence[_Item]:
        """Return the batches still to deliver: ``sequence[index + start * count :: count]``."""
        return sequence[self.index + self.start * self.count :: self.count]

    def seed(self, base: int) -> int:
        """Return a seed distinct for each (base, index, epoch), the same in every process and run.

        Use it for randomness of this shard alone, such as augmentation. ``start`` does not change it.
        """
        return _derive_seed(base, self.index, self.epoch)

    def shared_seed(self, base: int) -> int:
        """Return a seed for (base, epoch) that every shard of the pass shares.

        Shuffle the order with it, then ``select``, so that the shards partition one permutation.
        """
        return _derive_seed(base, -1, self.epoch)


def _derive_seed(base: int, index: int, epoch: int) -> int:
    digest = hashlib.blake2b(f"{base}/{index}/{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # 63 bits: fits numpy and random seeds


def is_shardable(stream_fn: Callable[..., Any]) -> bool:
    """Return whether ``stream_fn`` accepts a ``shard`` keyword argument."""
    try:
        parameters = inspect.signature(stream_fn).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("shard")
    if parameter is not None:
        return parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    return False
