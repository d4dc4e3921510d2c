"""Connect to the Dask cluster a stream runs on: a given scheduler or client, Dask's configured one, or a
LocalCluster of our own on 127.0.0.1 that lives exactly as long as the engine.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from emloop_ds.core.errors import ConfigError, StreamError, describe_exception

__all__ = ["DaskSession", "import_distributed", "open_session"]

INSTALL_HINT = "pip install 'emloop-ds[dask]'"


def import_distributed() -> Any:
    """Import and return ``distributed``, or say how to install it.

    Raises:
        ConfigError: if Dask distributed is not installed.
    """
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            f"the Dask engine needs Dask distributed, which is not installed ({describe_exception(exc)}); "
            f"install it with: {INSTALL_HINT}"
        ) from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)
    return distributed


class DaskSession:
    """Hold a client and, when we started it, the LocalCluster it talks to; ``close`` releases both."""

    def __init__(self, client: Any, cluster: Any, label: str, owns_client: bool) -> None:
        self.client = client
        self.cluster = cluster
        self.label = label
        """The scheduler's address, or ``local`` for a LocalCluster this session started."""
        self._owns_client = owns_client

    def close(self) -> None:
        """Close our client, then our cluster; leave a cluster or client the caller gave alone."""
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        if client is not None and self._owns_client:
            client.close()
        if cluster is not None:
            cluster.close()


def open_session(scheduler: str | Any | None, worker_count: int, timeout_s: float) -> DaskSession:
    """Return a session on ``scheduler``, a ``distributed.Client``, Dask's configured scheduler, or a new
    LocalCluster of ``worker_count`` processes; wait up to ``timeout_s`` for a scheduler with workers.

    Raises:
        ConfigError: if Dask is not installed or ``scheduler`` has the wrong type.
        StreamError: if the scheduler cannot be reached or has no workers within ``timeout_s``.
    """
    distributed = import_distributed()
    if isinstance(scheduler, distributed.Client):
        _wait_for_a_worker(scheduler, str(scheduler.scheduler.address), time.monotonic() + timeout_s)
        return DaskSession(scheduler, None, str(scheduler.scheduler.address), owns_client=False)
    if scheduler is not None and not isinstance(scheduler, str):
        raise ConfigError(
            f"scheduler must be an address such as 'tcp://host:8786', a distributed.Client or None, "
            f"not a {type(scheduler).__name__}"
        )
    import dask.config

    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        return _connect(distributed, str(address), timeout_s)
    return _start_local_cluster(distributed, worker_count, timeout_s)


def _connect(distributed: Any, address: str, timeout_s: float) -> DaskSession:
    """Connect a client of our own to the scheduler at ``address``."""
    deadline = time.monotonic() + timeout_s
    try:
        client = distributed.Client(address, timeout=timeout_s, set_as_default=False, direct_to_workers=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise StreamError(
            f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s "
            f"({describe_exception(exc)}); check the address and that `dask scheduler` runs there, "
            "or raise the timeout"
        ) from exc
    try:
        _wait_for_a_worker(client, address, deadline)
    except BaseException:
        client.close()
        raise
    return DaskSession(client, None, address, owns_client=True)


def _wait_for_a_worker(client: Any, address: str, deadline: float) -> None:
    """Wait until the scheduler has a worker, up to ``deadline``."""
    try:
        client.wait_for_workers(1, timeout=max(deadline - time.monotonic(), 0.1))
    except (OSError, TimeoutError) as exc:
        raise StreamError(
            f"the Dask scheduler at {address} has no workers ({describe_exception(exc)}); "
            f"start some with `dask worker {address}`"
        ) from exc


def _start_local_cluster(distributed: Any, worker_count: int, timeout_s: float) -> DaskSession:
    """Start a LocalCluster of ``worker_count`` single-threaded processes listening on 127.0.0.1 only."""
    cluster = distributed.LocalCluster(
        n_workers=worker_count,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        # The dashboard binds every interface unless told otherwise (see MEASUREMENTS.md).
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
        silence_logs=logging.WARNING,
        preload=["emloop_ds.core.stream.dask.worker_setup"],
    )
    try:
        client = distributed.Client(cluster, set_as_default=False, direct_to_workers=True)
        try:
            client.wait_for_workers(worker_count, timeout=timeout_s)
        except BaseException:
            client.close()
            raise
    except BaseException as exc:
        cluster.close()
        if isinstance(exc, OSError | TimeoutError):
            raise StreamError(
                f"the local Dask cluster did not start {worker_count} workers within {timeout_s:g} s "
                f"({describe_exception(exc)}); raise the timeout or use fewer workers"
            ) from exc
        raise
    return DaskSession(client, cluster, "local", owns_client=True)
