"""Name the shapes of data that flow through emloop-ds."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Batch", "Stream"]

Batch = Mapping[str, Sequence[Any]]
"""A batch maps source names to equally long sequences of examples."""

Stream = Iterable[Batch]
"""A stream is any iterable of batches; iterating it once is one pass over the data."""
