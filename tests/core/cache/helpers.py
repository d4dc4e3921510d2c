"""Build sample streams and caches for the cache tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emloop_ds.core.cache import CacheInfo, CacheWriter


def mixed_batches(count: int = 7, size: int = 4, last: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Return batches with float, int, bool, string, ragged and list sources; the last batch is smaller."""
    rng = np.random.default_rng(seed)
    batches = []
    for number in range(count):
        n = size if number < count - 1 else last
        batches.append(
            {
                "image": rng.random((n, 2, 3)).astype(np.float32),
                "label": np.arange(n, dtype=np.int64) + 100 * number,
                "flag": rng.random(n) > 0.5,
                "text": [f"example {number}/{row} é" for row in range(n)],
                "ragged": [rng.random((int(rng.integers(1, 5)), 2)) for _ in range(n)],
                "score": [float(number + row / 10) for row in range(n)],
            }
        )
    return batches


def build(path: Path, batches: list[dict[str, Any]], **options: Any) -> CacheInfo:
    """Write ``batches`` into a sealed cache at ``path``."""
    with CacheWriter(path, fingerprint="f" * 64, description="test", **options) as writer:
        for batch in batches:
            writer.append(batch)
        return writer.seal()


def assert_same_batch(actual: Any, expected: Any) -> None:
    """Assert two batches are equal: the same sources, containers, dtypes, shapes and values."""
    assert list(actual) == list(expected)
    for name, want in expected.items():
        got = actual[name]
        assert type(got) is type(want), name
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype, name
            assert got.shape == want.shape, name
            np.testing.assert_array_equal(got, want)
        elif want and isinstance(want[0], np.ndarray):
            assert len(got) == len(want), name
            for got_item, want_item in zip(got, want, strict=True):
                assert got_item.dtype == want_item.dtype
                assert got_item.shape == want_item.shape
                np.testing.assert_array_equal(got_item, want_item)
        else:
            assert got == want, name
            assert [type(item) for item in got] == [type(item) for item in want], name


def example_keys(batches: Any) -> list[int]:
    """Return the ``label`` of every example of ``batches``, in order."""
    return [int(label) for batch in batches for label in batch["label"]]
