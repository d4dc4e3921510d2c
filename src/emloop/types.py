"""Provide emloop's ``emloop.types``: the shapes of the data that datasets, models and hooks pass around.

``Batch`` and ``Stream`` are emloop-ds's own; ``EpochData`` and ``TimeProfile`` are defined as emloop
defines them, for the annotations of code written for emloop.
"""

from collections.abc import Mapping

from emloop import _not_provided
from emloop_ds.core.types import Batch, Stream

__all__ = ["Batch", "EpochData", "Stream", "TimeProfile"]

EpochData = Mapping[str, object]
"""The data of an epoch that hooks receive: stream name to whatever the hooks put there."""

TimeProfile = Mapping[str, list[float]]
"""Where an epoch's time went: event name (``read_batch_train``...) to the seconds of each occurrence."""

__getattr__ = _not_provided.refuse_other_names(__name__)
