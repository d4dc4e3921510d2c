"""Run the shards of a stream as Dask actors, one per shard, and hand their items back in shard order.

NOTE [dask chunks]
Each shard lives in one ``ShardActor`` on a worker (shards spread over distinct workers). The engine asks
it for batches with ``produce(generation, epoch, count, start)`` calls, each taking all the shard's unused
credit (NOTE [shard credits], ``engine.py``), at most ``_CALLS_IN_FLIGHT`` at once, so that the worker
always has the next call waiting while the reader side receives the last one, and credit that arrives
meanwhile makes the next call bigger (fewer round trips per batch).
- Calls on one actor can complete, and even run, out of order (they travel on separate connections), so
  each chunk says at which position of the pass it starts; the engine keeps early chunks aside until the
  gap before them is filled. No batch is lost or repeated: the actor numbers what it makes.
- ``start_pass`` only bumps the shard's generation; the actor starts the new pass when the first call of
  that generation reaches it, and answers calls of older generations with an empty chunk that is dropped.
  Every call carries the pass's ``start`` (a resume's delivered count), but only the first call of a
  generation opens the shard with it; chunk positions count from 0 each pass, whatever the start.
- A call that fails (its worker died or cannot be reached) ends the shard's pass with a ``ShardFailure``
  after the batches already in order; so does the actor's task going to error while the reader waits,
  which the engine checks every ``_WATCH_INTERVAL_S`` since a call to a dead worker may never complete.
  The next ``start_pass`` of that shard places a new actor on a live worker.
- Results cross from the client's event loop to the reader's thread through one queue, tagged with the
  shard and the actor's incarnation, so results of a replaced actor are ignored.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emloop_ds.core.errors import ConfigError, StreamError, describe_exception
from emloop_ds.core.stream.dask.actor import END, Chunk, RemoteFailure, ShardActor
from emloop_ds.core.stream.dask.cluster import INSTALL_HINT, DaskSession, open_session
from emloop_ds.core.stream.dask.shipping import ship_code
from emloop_ds.core.stream.dask.worker_setup import ACTOR_KEY_PREFIX
from emloop_ds.core.stream.engine import ShardEnd, ShardEngine, ShardFailure, ShardItem, StreamSpec
from emloop_ds.core.stream.remote_error import unpack_exception

__all__ = ["DaskEngine", "dask_engine_starter"]

_CALLS_IN_FLIGHT = 2
_WATCH_INTERVAL_S = 0.25


@dataclass(eq=False)
class _ShardState:
    """What the engine knows of one shard: its actor, credit, calls in flight and items in order."""

    actor: Any = None
    actor_future: Any = None
    address: str = ""
    incarnation: int = 0
    generation: int = 0
    epoch: int = 0
    start: int = 0
    credit: int = 0
    in_flight: int = 0
    expected: int = 0
    is_done: bool = True
    is_lost: bool = False
    early: dict[int, Chunk] = field(default_factory=dict)
    ready: deque[tuple[int, ShardItem]] = field(default_factory=deque)


# A result from the client's event loop: (shard, incarnation, chunk, exception of the call).
_Result = tuple[int, int, Chunk | None, BaseException | None]


class DaskEngine:
    """Run ``shard_count`` shards of ``spec`` on a Dask cluster (NOTE [dask chunks]).

    Args:
        spec: how a worker rebuilds the stream.
        shard_count: N, the number of shards; also the number of workers of a LocalCluster we start.
        scheduler: an address such as ``tcp://host:8786``, a ``distributed.Client``, or None for Dask's
            configured scheduler (``DASK_SCHEDULER_ADDRESS``) or else a LocalCluster on 127.0.0.1.
        scheduler_timeout_s: how long to wait for the scheduler and its workers.

    Raises:
        ConfigError: if Dask is not installed.
        StreamError: if the cluster cannot be reached or the shards cannot be placed on it.
    """

    def __init__(
        self,
        spec: StreamSpec,
        shard_count: int,
        *,
        scheduler: str | Any | None = None,
        scheduler_timeout_s: float = 10.0,
    ) -> None:
        if shard_count < 1:
            raise ValueError(f"a Dask engine needs 1 or more shards, not {shard_count}")
        self._spec = spec
        self._timeout_s = scheduler_timeout_s
        self._session: DaskSession | None = None
        self._shards = [_ShardState() for _ in range(shard_count)]
        self._results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self._arrivals = itertools.count()
        self._token = uuid.uuid4().hex[:8]
        self._plugins: list[str] = []
        self._session = open_session(scheduler, shard_count, scheduler_timeout_s)
        self._label = self._session.label
        self._finalizer = weakref.finalize(self, _release, self._session, self._shards, self._plugins)
        try:
            self._shipped_file = ship_code(self._session.client, spec)
            if self._shipped_file is not None and self._session.cluster is None:
                self._plugins.append(self._shipped_file)
            self._place_actors(range(shard_count))
        except BaseException:
            self.close()
            raise

    @property
    def shard_count(self) -> int:
        """Return the number of shards, N."""
        return len(self._shards)

    @property
    def scheduler(self) -> str:
        """Return the scheduler's address, or ``local`` for the LocalCluster this engine started."""
        return self._label

    def start_pass(self, shard: int, epoch: int, start: int = 0) -> None:
        """Restart ``shard`` for pass ``epoch`` at ``start`` with no credit, on a new actor if lost."""
        state = self._shards[shard]
        if state.is_lost:
            self._place_actors([shard])
        state.generation += 1
        state.epoch, state.start, state.credit, state.expected, state.is_done = epoch, start, 0, 0, False
        state.early.clear()

    def grant(self, shard: int, count: int) -> None:
        """Allow ``shard`` ``count`` more batches, and ask its actor for them."""
        self._shards[shard].credit += count
        self._request(shard)

    def receive(self, shard: int | None) -> tuple[int, ShardItem]:
        """Return the next item of ``shard``, or the earliest arrived item of any shard when None."""
        while True:
            found = self._take_ready(shard)
            if found is not None:
                return found
            waited_on = self._shards if shard is None else [self._shards[shard]]
            if not any(state.in_flight for state in waited_on):
                raise RuntimeError(f"receive({shard}) would wait forever: no call in flight to wait for")
            try:
                result = self._results.get(timeout=_WATCH_INTERVAL_S)
            except queue.Empty:
                self._watch_actors()
                continue
            self._accept(*result)

    def close(self) -> None:
        """Release the actors and the client; shut down the LocalCluster if this engine started it."""
        self._finalizer()

    def _take_ready(self, shard: int | None) -> tuple[int, ShardItem] | None:
        if shard is not None:
            ready = self._shards[shard].ready
            return (shard, ready.popleft()[1]) if ready else None
        heads = [(state.ready[0][0], index) for index, state in enumerate(self._shards) if state.ready]
        if not heads:
            return None
        index = min(heads)[1]
        return index, self._shards[index].ready.popleft()[1]

    def _request(self, shard: int) -> None:
        """Send one call for all of ``shard``'s unused credit if fewer than _CALLS_IN_FLIGHT are out."""
        state = self._shards[shard]
        if state.credit <= 0 or state.is_done or state.in_flight >= _CALLS_IN_FLIGHT:
            return
        count, state.credit = state.credit, 0
        state.in_flight += 1
        client = self._client()
        # The actor was made under `client.as_current()`, so its calls go through this client.
        call = state.actor.produce(state.generation, state.epoch, count, state.start)
        results, incarnation = self._results, state.incarnation

        async def forward() -> None:
            try:
                chunk = await call
            except BaseException as exc:  # the loop's own CancelledError too: the reader must hear of it
                results.put((shard, incarnation, None, exc))
            else:
                results.put((shard, incarnation, chunk, None))

        client.loop.add_callback(forward)

    def _accept(self, shard: int, incarnation: int, chunk: Chunk | None, error: BaseException | None) -> None:
        """Put a call's result in order (NOTE [dask chunks]) and ask for more if credit is waiting."""
        state = self._shards[shard]
        if incarnation != state.incarnation:
            return
        state.in_flight -= 1
        if error is not None:
            self._fail(shard, error)
        elif chunk is not None and chunk[0] == state.generation and not state.is_done:
            _generation, start, batches, outcome = chunk
            if start >= 0 and (batches or outcome is not None):
                state.early[start] = chunk
                self._put_in_order(shard, state)
        self._request(shard)

    def _put_in_order(self, shard: int, state: _ShardState) -> None:
        while state.expected in state.early:
            _generation, _start, batches, outcome = state.early.pop(state.expected)
            state.ready.extend((next(self._arrivals), batch) for batch in batches)
            state.expected += len(batches)
            if outcome is not None:
                item: ShardItem = ShardEnd(shard)
                if isinstance(outcome, RemoteFailure):
                    error = unpack_exception(outcome.packed, outcome.where)
                    item = ShardFailure(shard, error, f"dask worker {state.address}")
                elif outcome != END:
                    raise AssertionError(f"unknown chunk outcome {outcome!r}")
                state.ready.append((next(self._arrivals), item))
                state.is_done = True
                state.early.clear()

    def _fail(self, shard: int, error: BaseException) -> None:
        """End ``shard``'s pass with the loss of its actor, after the batches already in order."""
        state = self._shards[shard]
        state.is_lost = True
        if state.is_done:
            return
        lost = ConnectionError(
            f"lost the Dask worker {state.address} that ran shard {shard} ({describe_exception(error)}); "
            "the batches it had not delivered are not repeated"
        )
        lost.__cause__ = error
        state.ready.append((next(self._arrivals), ShardFailure(shard, lost, f"dask worker {state.address}")))
        state.is_done = True
        state.early.clear()

    def _watch_actors(self) -> None:
        """Fail each waiting shard whose actor's task has gone to error (its worker was lost)."""
        client_status = str(self._client().status)
        for shard, state in enumerate(self._shards):
            status = state.actor_future.status
            if state.in_flight and (status not in ("pending", "finished") or client_status == "closed"):
                state.incarnation += 1  # its calls may never complete; ignore them
                state.in_flight = 0
                self._fail(shard, StreamError(f"its actor's task is {status}, the client {client_status}"))

    def _client(self) -> Any:
        if self._session is None or self._session.client is None:
            raise StreamError("the Dask engine is closed; create a new stream to read again")
        return self._session.client

    def _place_actors(self, shards: Any) -> None:
        """Create the actors of ``shards``, each shard preferring the next worker in turn (never one that
        lost an actor of this engine), and wait for them."""
        client = self._client()
        lost = {state.address for state in self._shards if state.is_lost}
        workers = sorted(set(client.ncores()) - lost) or sorted(client.ncores())
        if not workers:
            raise StreamError(f"the Dask scheduler at {self.scheduler} has no workers left for the shards")
        placed = []
        for shard in shards:
            state = self._shards[shard]
            state.actor_future = client.submit(
                ShardActor,
                self._spec,
                shard,
                self.shard_count,
                self._shipped_file,
                actor=True,
                workers=[workers[shard % len(workers)]],
                allow_other_workers=True,  # a preference: the worker may be gone by now
                key=f"{ACTOR_KEY_PREFIX}{shard}-{self._token}-{state.incarnation}",
                pure=False,
            )
            state.incarnation += 1
            state.in_flight, state.is_lost = 0, False
            placed.append(state)
        try:
            with client.as_current():
                for state in placed:
                    state.actor = state.actor_future.result(timeout=self._timeout_s)
            holders = client.who_has([state.actor_future for state in placed])
        except Exception as exc:
            raise StreamError(
                f"could not start the stream's shards on the Dask workers ({describe_exception(exc)}); "
                "check that emloop-ds and the dataset's dependencies are installed on every worker"
            ) from exc
        for state in placed:
            state.address = next(iter(holders.get(state.actor_future.key, ())), "(unknown address)")


def dask_engine_starter(
    scheduler: str | Any | None, scheduler_timeout_s: float
) -> Callable[[StreamSpec, int], ShardEngine]:
    """Return what starts a ``DaskEngine`` of N shards later (on the wrapper's first ``with``).

    Raises:
        ConfigError: now, if Dask is not installed, without importing it.
    """
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise ConfigError(f"engine='dask' needs Dask distributed, which is not installed: {INSTALL_HINT}")

    def start(spec: StreamSpec, shard_count: int) -> ShardEngine:
        return DaskEngine(spec, shard_count, scheduler=scheduler, scheduler_timeout_s=scheduler_timeout_s)

    return start


def _release(session: DaskSession, shards: list[_ShardState], plugins: list[str]) -> None:
    """Drop the actors and our worker plugins, then close the session (on close, collection and exit)."""
    for state in shards:
        state.actor = state.actor_future = None
    for name in plugins:  # on a cluster we did not start; the shipped archive stays on the workers
        with contextlib.suppress(Exception):  # the scheduler may be gone; closing goes on regardless
            session.client.unregister_worker_plugin(name)
    session.close()
