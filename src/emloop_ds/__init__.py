"""emloop-ds: configure, inspect, stream and download machine-learning datasets.

Every name below is imported when it is first used (PEP 562), so that ``import emloop_ds``, and with it
every ``emloop`` command, loads only the modules it needs: ``emloop dataset download`` never imports the
stream, shard or schema modules.
"""

import typing

if typing.TYPE_CHECKING:
    from emloop_ds.core.config import load_config
    from emloop_ds.core.dataset import AbstractDataset, BaseDataset, DownloadableDataset
    from emloop_ds.core.download.progress import FileProgress, NoProgress, Progress
    from emloop_ds.core.errors import (
        CacheError,
        ChecksumError,
        ConfigError,
        DatasetError,
        DownloadCancelledError,
        DownloadError,
        EmloopDsError,
        ExtractionError,
        StreamError,
        StreamNotEnteredError,
        StreamProducerError,
    )
    from emloop_ds.core.factory import create_dataset
    from emloop_ds.core.schema import DatasetInfo, SourceInfo, StreamInfo, inspect_dataset
    from emloop_ds.core.stream.ranks import ranks_from_env
    from emloop_ds.core.stream.shard import Shard
    from emloop_ds.core.stream.wrapper import StreamWrapper
    from emloop_ds.core.types import Batch, Stream

_EXPORTS = {
    "AbstractDataset": "emloop_ds.core.dataset",
    "BaseDataset": "emloop_ds.core.dataset",
    "Batch": "emloop_ds.core.types",
    "CacheError": "emloop_ds.core.errors",
    "ChecksumError": "emloop_ds.core.errors",
    "ConfigError": "emloop_ds.core.errors",
    "DatasetError": "emloop_ds.core.errors",
    "DatasetInfo": "emloop_ds.core.schema",
    "DownloadCancelledError": "emloop_ds.core.errors",
    "DownloadError": "emloop_ds.core.errors",
    "DownloadableDataset": "emloop_ds.core.dataset",
    "EmloopDsError": "emloop_ds.core.errors",
    "ExtractionError": "emloop_ds.core.errors",
    "FileProgress": "emloop_ds.core.download.progress",
    "NoProgress": "emloop_ds.core.download.progress",
    "Progress": "emloop_ds.core.download.progress",
    "Shard": "emloop_ds.core.stream.shard",
    "SourceInfo": "emloop_ds.core.schema",
    "Stream": "emloop_ds.core.types",
    "StreamError": "emloop_ds.core.errors",
    "StreamInfo": "emloop_ds.core.schema",
    "StreamNotEnteredError": "emloop_ds.core.errors",
    "StreamProducerError": "emloop_ds.core.errors",
    "StreamWrapper": "emloop_ds.core.stream.wrapper",
    "create_dataset": "emloop_ds.core.factory",
    "inspect_dataset": "emloop_ds.core.schema",
    "load_config": "emloop_ds.core.config",
    "ranks_from_env": "emloop_ds.core.stream.ranks",
}

__all__ = [
    "AbstractDataset",
    "BaseDataset",
    "Batch",
    "CacheError",
    "ChecksumError",
    "ConfigError",
    "DatasetError",
    "DatasetInfo",
    "DownloadCancelledError",
    "DownloadError",
    "DownloadableDataset",
    "EmloopDsError",
    "ExtractionError",
    "FileProgress",
    "NoProgress",
    "Progress",
    "Shard",
    "SourceInfo",
    "Stream",
    "StreamError",
    "StreamInfo",
    "StreamNotEnteredError",
    "StreamProducerError",
    "StreamWrapper",
    "create_dataset",
    "inspect_dataset",
    "load_config",
    "ranks_from_env",
]


if not typing.TYPE_CHECKING:  # type checkers see the imports above, and flag a name that is not there

    def __getattr__(name: str) -> object:
        """Import an exported name on its first use, and keep it as a module attribute."""
        import importlib

        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
