"""Provide emloop's ``emloop.datasets``: the dataset concept, the Python base classes, the stream wrapper."""

from emloop import _not_provided
from emloop_ds.core.dataset import AbstractDataset, BaseDataset, DownloadableDataset
from emloop_ds.core.stream.wrapper import StreamWrapper

__all__ = ["AbstractDataset", "BaseDataset", "DownloadableDataset", "StreamWrapper"]

__getattr__ = _not_provided.refuse_other_names(__name__)
