"""Cache a stream on disk once and replay it at memory speed, in order or shuffled (issue 14).

A cache is one folder, sealed by an atomic rename of a temporary folder beside it
(``.<name>.tmp-<pid>-<random>``); a folder without ``manifest.json`` never counts as a cache.

::

    <root>/<DatasetClass>-<fingerprint[:16]>/<stream>/
        manifest.json   format_version, fingerprint, description, sources (layout of each), batches,
                        examples, batch_lengths (the source's batch boundaries), chunk_lengths (rows per
                        record batch), files ({name: {bytes, sha256}}); written last
        data.arrow      an Arrow IPC *file* (``pyarrow.ipc.open_file``), one row per example

Columns of ``data.arrow``, per source, in the source's order:

- numbers and booleans with one value per example: a primitive column (booleans as ``uint8``);
- arrays per example: a ``large_list`` column of the flattened values (C order) and a column
  ``<name>.shape``, ``fixed_size_list<int64>[ndim]``, with each example's shape. When every example
  has one shape (``item_shape`` in the manifest), a reader reshapes a record batch's values buffer to
  ``(rows, *item_shape)`` without a copy; otherwise the source is variable-length;
- ``str``: ``large_string``; ``bytes``: ``large_binary``.

Record batches (chunks) are large (up to about 16 MB or 65536 rows) whatever the source's batch size,
so that an in-order batch is a view of one chunk and a shuffled batch is one gather per chunk touched.
The manifest's ``container`` says whether a source came as a numpy array, a list of numbers, strings or
bytes, or a list of arrays, and the reader gives it back the same way.
"""

from emloop_ds.core.cache.fingerprint import (
    FORMAT_VERSION,
    callable_cache_path,
    callable_fingerprint,
    dataset_cache_dir,
    dataset_fingerprint,
    default_cache_root,
    stream_cache_path,
)
from emloop_ds.core.cache.lock import build_lock
from emloop_ds.core.cache.manifest import CacheInfo, SourceLayout
from emloop_ds.core.cache.reader import CacheReader, is_sealed, read_info, remove_cache
from emloop_ds.core.cache.writer import CacheWriteError, CacheWriter

__all__ = [
    "FORMAT_VERSION",
    "CacheInfo",
    "CacheReader",
    "CacheWriteError",
    "CacheWriter",
    "SourceLayout",
    "build_lock",
    "callable_cache_path",
    "callable_fingerprint",
    "dataset_cache_dir",
    "dataset_fingerprint",
    "default_cache_root",
    "is_sealed",
    "read_info",
    "remove_cache",
    "stream_cache_path",
]
