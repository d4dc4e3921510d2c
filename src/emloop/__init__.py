"""Provide emloop's dataset layer under emloop's own names, for code written for emloop.

``import emloop as el`` then ``el.BaseDataset``, ``el.DownloadableDataset``, ``el.Stream``... are the
classes and types of emloop-ds itself. The rest of emloop (``emloop.MainLoop``, ``emloop.hooks``...) is not
ours: it raises an ``ImportError`` that says so (README, "Code written for emloop").
"""

from emloop import _not_provided, datasets, types
from emloop.datasets import AbstractDataset, BaseDataset, DownloadableDataset, StreamWrapper
from emloop.types import Batch, EpochData, Stream, TimeProfile

__all__ = [
    "AbstractDataset",
    "BaseDataset",
    "Batch",
    "DownloadableDataset",
    "EpochData",
    "Stream",
    "StreamWrapper",
    "TimeProfile",
    "datasets",
    "types",
]

__getattr__ = _not_provided.refuse_other_names(__name__)
_not_provided.install_finder()
