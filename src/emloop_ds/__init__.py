"""emloop-ds: configure, inspect, stream and download machine-learning datasets."""

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
