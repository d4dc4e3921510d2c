"""Prepare each worker process of a LocalCluster that the Dask engine starts (a Dask preload module).

Ctrl-C in a terminal reaches every process of the foreground group; the reader handles it and closes the
cluster, so its workers ignore it instead of each printing a traceback.

A call to an actor can also reach its worker after the reader released the actor: the call was sent just
before a Ctrl-C, or travelled on another connection than the scheduler's message that freed the actor.
Dask's worker then logs a KeyError traceback for it (``Worker.actor_execute`` looks the actor up before
its ``try``), on the reader's terminal. The reader has finished with that call, and one it still waits
for hears the same KeyError in its reply, so the workers drop that one log record, for our actors only.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

__all__ = ["ACTOR_KEY_PREFIX", "dask_setup"]

ACTOR_KEY_PREFIX = "emloop-ds-shard-"
"""How the keys of the engine's actors begin (``engine.py`` names them)."""


class _LeftoverActorCallFilter(logging.Filter):
    """Drop ``distributed.core``'s traceback for a call that found none of our actors under its key."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for that record only."""
        error = record.exc_info[1] if record.exc_info else None
        return not (
            record.msg == "Exception while handling op %s"
            and record.args == ("actor_execute",)
            and isinstance(error, KeyError)
            and bool(error.args)
            and str(error.args[0]).startswith(ACTOR_KEY_PREFIX)
        )


def dask_setup(worker: Any) -> None:
    """Ignore SIGINT and leftover actor calls in this new worker process (Dask's preload hook)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.core").addFilter(_LeftoverActorCallFilter())
