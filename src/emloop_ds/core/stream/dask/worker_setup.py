"""Prepare each worker process of a LocalCluster that the Dask engine starts (a Dask preload module).

Ctrl-C in a terminal reaches every process of the foreground group; the reader handles it and closes the
cluster, so its workers ignore it instead of each printing a traceback.
"""

from __future__ import annotations

import signal
from typing import Any

__all__ = ["dask_setup"]


def dask_setup(worker: Any) -> None:
    """Ignore SIGINT in this worker process; Dask calls this once the worker has started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
