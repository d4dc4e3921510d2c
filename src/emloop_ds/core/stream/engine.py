"""Define what a shard engine is: something that runs the N shards of one stream and hands back their items.

Two engines implement ``ShardEngine``: worker processes on this machine and a Dask cluster. The wrapper's
merge logic (round-robin order, passes, epoch cutting, credits) is written once against this protocol.

NOTE [shard credits]
A shard produces a batch only against a credit granted by the reader's side. ``grant(shard, n)`` allows n
more calls of ``next()`` on the shard's stream; reaching the end of the stream (``ShardEnd``) or failing
(``ShardFailure``) uses the credit of the call that found it, and then the shard produces nothing more in
this pass whatever credit it has left. So the reader side bounds both the batches in flight per shard
(``buffer_size``) and the batches of the current epoch (nothing of the next epoch is produced early).
A shard's items reach the reader in the order the shard produced them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from emloop_ds.core.stream.shard import Shard
from emloop_ds.core.types import Batch

__all__ = ["ShardEnd", "ShardEngine", "ShardFailure", "ShardItem", "StreamSpec", "rank_shard"]


@dataclass(frozen=True, slots=True)
class ShardEnd:
    """Say that a shard's stream ended in this pass."""

    shard: int


@dataclass(frozen=True, slots=True)
class ShardFailure:
    """Carry a shard's failure: the original exception (or a stand-in) and where it happened.

    ``where`` names the place for the message, such as ``worker process 4242`` or ``dask worker
    tcp://127.0.0.1:40123``; a lost worker is a failure whose ``error`` says how it was lost.
    """

    shard: int
    error: BaseException
    where: str


ShardItem = Batch | ShardEnd | ShardFailure


class ShardEngine(Protocol):
    """Run the shards of one stream somewhere and hand their items back (NOTE [shard credits])."""

    @property
    def shard_count(self) -> int:
        """Return the number of shards, N."""
        ...

    def start_pass(self, shard: int, epoch: int, start: int = 0) -> None:
        """Restart ``shard``'s stream as ``stream_fn(shard=Shard(shard, N, epoch, start))`` with no credit.

        ``start`` is the number of the shard's batches of this pass already delivered, for a resume.

        Called only once every item of the shard's previous pass has been received.
        """
        ...

    def grant(self, shard: int, count: int) -> None:
        """Allow ``shard`` to make ``count`` more calls of ``next()`` on its stream."""
        ...

    def receive(self, shard: int | None) -> tuple[int, ShardItem]:
        """Return the next item of ``shard``, or of whichever shard has one first when ``None``.

        Blocks until an item arrives, a worker is found lost (a ``ShardFailure``), or Ctrl-C.
        """
        ...

    def close(self) -> None:
        """Stop every worker and free what the engine holds; idempotent, also safe after a failure."""
        ...


@dataclass(frozen=True)
class StreamSpec:
    """Tell a worker how to rebuild a stream: a dataset class with its config and method, or a callable.

    A worker rebuilds the dataset once, from ``dataset_module``, ``dataset_qualname`` and ``config_str``,
    and calls its ``method`` with ``shard=``; otherwise it calls the picklable ``function``.
    ``search_paths`` are put ahead on ``sys.path`` first (the config's folder and the working folder, as
    ``create_dataset`` does); ``module_file`` is the dataset module's file, for engines that ship it (Dask).
    With ``world_size > 1`` the reader is rank ``rank`` of a data-parallel job, and its engine's shard ``i``
    of ``N`` is the job's shard ``i * world_size + rank`` of ``N * world_size`` (NOTE [rank shards]).
    """

    description: str
    dataset_module: str | None = None
    dataset_qualname: str | None = None
    config_str: str | None = None
    method: str | None = None
    module_file: str | None = None
    search_paths: tuple[str, ...] = ()
    function: Callable[..., Iterable[Batch]] | None = None
    rank: int = 0
    world_size: int = 1

    def open(self, shard: Shard) -> Iterator[Batch]:
        """Return an iterator over ``shard``'s batches, building the dataset on first use in this process."""
        shard = rank_shard(shard, self.rank, self.world_size)
        if self.function is not None:
            return iter(self.function(shard=shard))
        dataset: Any = _dataset_for(self)
        return iter(getattr(dataset, str(self.method))(shard=shard))


# NOTE [rank shards]
# A data-parallel job of W ranks, each reading its stream with N workers, splits the stream into N * W
# shards: worker i of rank r reads shard i * W + r. With ordered=True, the round-robin merge of a rank's
# workers then yields exactly the job's global batches r, r + W, r + 2W, ... in order, whatever N is,
# because shard.select interleaves them that way. In-process (N = 1) a rank reads Shard(r, W).


def rank_shard(shard: Shard, rank: int, world_size: int) -> Shard:
    """Return the job-wide shard that an engine's ``shard`` is for rank ``rank`` (NOTE [rank shards])."""
    if world_size == 1:
        return shard
    return Shard(shard.index * world_size + rank, shard.count * world_size, shard.epoch, shard.start)


_DATASETS: dict[tuple[str | None, str | None, str | None], Any] = {}


def _dataset_for(spec: StreamSpec) -> Any:
    """Return this process's dataset for ``spec``, built once from its class and config string."""
    key = (spec.dataset_module, spec.dataset_qualname, spec.config_str)
    if key not in _DATASETS:
        import importlib
        import sys

        for folder in reversed(spec.search_paths):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        target: Any = importlib.import_module(str(spec.dataset_module))
        for part in str(spec.dataset_qualname).split("."):
            target = getattr(target, part)
        _DATASETS[key] = target(spec.config_str)
    return _DATASETS[key]
