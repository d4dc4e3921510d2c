"""Run a sharded stream on a Dask cluster: the engine, the actor on the workers, the cluster, code shipping.

Nothing here imports Dask until an engine is created, so that Dask stays an optional extra.
"""

from emloop_ds.core.stream.dask.engine import DaskEngine, dask_engine_starter

__all__ = ["DaskEngine", "dask_engine_starter"]
