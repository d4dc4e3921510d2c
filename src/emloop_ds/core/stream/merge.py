"""Merge the shards that a ``ShardEngine`` runs into one stream of epochs, whatever the engine.

NOTE [shard merge]
- A pass starts every shard with ``Shard(i, N, epoch=pass number)``, passes being numbered from 0, and
  ends once every shard has ended (or failed). A pass starts only when the reader asks for a batch after
  the previous one ended, so nothing of it is produced early.
- Ordered: one batch from each shard in turn, starting at shard 0 each pass and skipping the shards that
  have ended; the turn is kept across epoch cuts and ``with`` blocks. Unordered: whichever comes first.
- Epochs: without ``epoch_size`` an epoch is a pass. With it, an epoch is exactly that many batches,
  cutting across passes; a pass that yields nothing then cannot fill an epoch, which is an error.
- Credits (NOTE [shard credits], engine.py): each running shard has at most ``buffer_size`` batches
  granted and not yet received, and all shards together at most the batches left in the current epoch,
  so that no batch of the next epoch is produced before the reader asks for it. Ordered, the credit
  follows the round-robin plan: the shard at turn ``j`` of the ``r`` batches left gets its share of them.
  Credit is topped up as soon as a batch is received, before the reader works on it, and again whenever
  the plan grows (a new epoch or pass, a shard that ended).
- Resume (NOTE [resume position], resume_state.py): ``position`` says, per shard, the batches of the pass
  delivered and whether it still runs, and whose turn it is; ``resume`` starts the next pass from there,
  each running shard at ``Shard(..., start=its delivered count)``, ended shards not at all. Batches that
  were granted but not delivered are made again. A resumed pass that yields nothing more ends no epoch:
  the reader had already had its last batch; without ``epoch_size`` that epoch is then counted as ended,
  so the next pass is the next epoch in the numbering too.
- A failure reaches the reader in stream order as ``StreamProducerError`` from the original exception;
  the failed shard counts as ended for this pass and the others go on.
"""

from __future__ import annotations

from emloop_ds.core.errors import StreamError, StreamProducerError, describe_exception
from emloop_ds.core.stream.engine import ShardEnd, ShardEngine, ShardFailure
from emloop_ds.core.types import Batch

__all__ = ["ShardMerge"]


class ShardMerge:
    """Read an engine's shards as one stream of epochs (NOTE [shard merge])."""

    def __init__(
        self,
        engine: ShardEngine,
        *,
        ordered: bool,
        buffer_size: int,
        epoch_size: int,
        description: str,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"ShardMerge needs a buffer_size of 1 or more, not {buffer_size}")
        self._engine = engine
        self._count = engine.shard_count
        self._is_ordered = ordered
        self._buffer_size = buffer_size
        self._epoch_size = epoch_size
        self._description = description
        self._pass = -1
        self._needs_pass = True
        self._is_pass_fresh = True
        self._is_running = [False] * self._count
        self._in_flight = [0] * self._count
        self._turn = 0
        self._epoch_batches = 0
        self._is_topped_up = False
        self._delivered = [0] * self._count  # batches of the current pass handed to the reader, per shard
        self._epochs_ended = 0
        self._resume_from: tuple[list[int], list[bool], int] | None = None
        self._is_resumed_pass = False

    def position(self) -> tuple[int, int, int, list[int], list[bool], int]:
        """Return epoch ends, batches of the epoch, the pass, per-shard delivered and running, the turn."""
        if self._resume_from is not None:  # resumed, not started yet
            delivered, running, turn = self._resume_from
            return self._epochs_ended, self._epoch_batches, self._pass + 1, delivered, running, turn
        if self._needs_pass:  # between passes: the next one starts afresh
            return (
                self._epochs_ended,
                self._epoch_batches,
                self._pass + 1,
                [0] * self._count,
                [True] * self._count,
                0,
            )
        return (
            self._epochs_ended,
            self._epoch_batches,
            self._pass,
            list(self._delivered),
            list(self._is_running),
            self._turn,
        )

    def resume(
        self, pass_number: int, epoch_batches: int, delivered: list[int], running: list[bool], turn: int
    ) -> None:
        """Start at pass ``pass_number`` with each shard's ``delivered`` batches of it left out."""
        self._pass = pass_number - 1
        self._epoch_batches = epoch_batches
        self._resume_from = (list(delivered), list(running), turn)

    @property
    def pass_number(self) -> int:
        """Return the number of the current pass (``Shard.epoch``), -1 before the first."""
        return self._pass

    @property
    def is_idle(self) -> bool:
        """Return whether no shard has a batch granted that the reader has not received."""
        return not any(self._in_flight)

    def next_batch(self) -> Batch | None:
        """Return the next batch, or ``None`` at the end of an epoch.

        Raises:
            StreamProducerError: a shard failed; its exception is the cause.
            StreamError: a fixed-size epoch cannot be filled because a whole pass yielded nothing.
        """
        if 0 < self._epoch_size <= self._epoch_batches:
            self._epoch_batches = 0
            self._epochs_ended += 1
            self._is_topped_up = False
            return None
        while True:
            if self._needs_pass:
                self._start_pass()
            if not any(self._is_running):
                if self._end_pass():
                    return None
                continue
            if not self._is_topped_up:
                self._grant()
            index, item = self._engine.receive(self._turn if self._is_ordered else None)
            if not self._is_running[index]:
                continue  # news from a shard with nothing due, such as a worker lost between passes
            self._in_flight[index] -= 1
            if isinstance(item, ShardEnd):
                self._end_shard(index)
            elif isinstance(item, ShardFailure):
                self._is_pass_fresh = False
                self._end_shard(index)
                raise StreamProducerError(
                    f"{self._description} failed in shard {index} of {self._count} ({item.where}): "
                    f"{describe_exception(item.error)}"
                ) from item.error
            else:
                self._is_pass_fresh = False
                self._epoch_batches += 1
                self._delivered[index] += 1
                self._turn = self._next_running(index)
                self._grant()  # now, not at the next call: the shard works while the reader does
                return item

    def _start_pass(self) -> None:
        self._pass += 1
        self._needs_pass = False
        self._is_topped_up = False
        self._is_pass_fresh = True
        self._turn = 0
        starts, running = [0] * self._count, [True] * self._count
        self._is_resumed_pass = self._resume_from is not None and any(self._resume_from[0])
        if self._resume_from is not None:
            starts, running, self._turn = self._resume_from
            self._resume_from = None
        for shard in range(self._count):
            self._delivered[shard] = starts[shard]
            self._is_running[shard] = running[shard]
            self._in_flight[shard] = 0
            if running[shard]:
                self._engine.start_pass(shard, self._pass, starts[shard])

    def _end_pass(self) -> bool:
        """Note that every shard ended; return whether that also ends the epoch."""
        self._needs_pass = True
        if self._is_pass_fresh and self._is_resumed_pass:  # resumed right at the pass end: NOTE [shard merge]
            if self._epoch_size <= 0 and self._epoch_batches > 0:  # the saved epoch ended with its last batch
                self._epoch_batches = 0
                self._epochs_ended += 1
            return False
        if self._epoch_size <= 0:
            self._epoch_batches = 0
            self._epochs_ended += 1
            return True
        if self._is_pass_fresh:
            raise StreamError(
                f"{self._description} yielded no batches in a whole pass of its {self._count} shards, so an "
                f"epoch of {self._epoch_size} batches cannot be filled; make the stream yield batches"
            )
        return False

    def _end_shard(self, index: int) -> None:
        self._is_topped_up = False  # the other shards' shares of the epoch grew
        self._is_running[index] = False
        self._in_flight[index] = 0  # whatever credit it had left is void (NOTE [shard credits])
        if index == self._turn:
            self._turn = self._next_running(index)

    def _next_running(self, index: int) -> int:
        """Return the first running shard after ``index`` in turn, or ``index`` if there is none."""
        for offset in range(1, self._count + 1):
            candidate = (index + offset) % self._count
            if self._is_running[candidate]:
                return candidate
        return index

    def _grant(self) -> None:
        """Top up the running shards' credit to their targets (NOTE [shard merge])."""
        self._is_topped_up = True
        targets = self._ordered_targets() if self._is_ordered else self._unordered_targets()
        for shard, target in targets.items():
            missing = target - self._in_flight[shard]
            if missing > 0:
                self._in_flight[shard] += missing
                self._engine.grant(shard, missing)

    def _left_in_epoch(self) -> int | None:
        return self._epoch_size - self._epoch_batches if self._epoch_size > 0 else None

    def _ordered_targets(self) -> dict[int, int]:
        order, turn = [], self._turn
        for _ in range(self._count):
            if self._is_running[turn]:
                order.append(turn)
            turn = (turn + 1) % self._count
        left = self._left_in_epoch()
        if left is None:
            return dict.fromkeys(order, self._buffer_size)
        share, extra = divmod(left, len(order))
        return {shard: min(self._buffer_size, share + (j < extra)) for j, shard in enumerate(order)}

    def _unordered_targets(self) -> dict[int, int]:
        running = [shard for shard in range(self._count) if self._is_running[shard]]
        left = self._left_in_epoch()
        if left is None:
            return dict.fromkeys(running, self._buffer_size)
        targets = {shard: self._in_flight[shard] for shard in running}
        budget = left - sum(targets.values())
        while budget > 0:
            open_shards = [shard for shard in running if targets[shard] < self._buffer_size]
            if not open_shards:
                break
            for shard in open_shards[:budget]:
                targets[shard] += 1
            budget -= min(budget, len(open_shards))
        return targets
