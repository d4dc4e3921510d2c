"""Fisher's Iris measurements as an emloop dataset with a train and a test stream, both shardable.

Both streams take a ``shard``: called without one (as emloop does) they yield the whole stream; with
``Shard(i, n)`` they yield batches ``i, i+n, i+2n, ...`` of it, so ``StreamWrapper(..., workers=n)``
delivers exactly the batches of ``workers=0``, in the same order.
"""

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emloop_ds import BaseDataset, Batch, Shard

SPECIES = ("setosa", "versicolor", "virginica")


class IrisDataset(BaseDataset):
    """Serve the 150 Iris flowers: every fifth row is held out for testing, the rest trains."""

    def _configure_dataset(
        self,
        output_dir: str | None,
        batch_size: int = 16,
        csv_file: str = "iris.csv",
        seed: int = 0,
        **kwargs,
    ) -> None:
        if kwargs:
            raise ValueError(f"unknown config keys: {', '.join(sorted(kwargs))}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._batch_size = batch_size
        self._seed = seed
        self._passes = 0
        features, labels = _read_csv(Path(__file__).parent / csv_file)
        is_test = np.arange(len(labels)) % 5 == 4
        self._train = features[~is_test], labels[~is_test]
        self._test = features[is_test], labels[is_test]

    def train_stream(self, shard: Shard | None = None) -> Iterator[Batch]:
        """Yield shuffled training batches, reshuffled for each pass; with ``shard``, only its batches.

        Every shard of a pass shuffles with the same seed, from ``seed`` and the pass number, and then
        selects its batches: the shards partition one permutation. Called without a shard, the dataset
        counts its own passes, so that it reshuffles each time exactly as shards of that pass would.
        """
        if shard is None:
            shard = Shard(0, 1, epoch=self._passes)
            self._passes += 1
        features, labels = self._train
        order = np.random.default_rng(shard.shared_seed(self._seed)).permutation(len(labels))
        for start in shard.select(range(0, len(labels), self._batch_size)):
            rows = order[start : start + self._batch_size]
            yield {"features": features[rows], "labels": labels[rows]}

    def test_stream(self, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:
        """Yield the held-out batches in file order; with ``shard``, only its batches."""
        features, labels = self._test
        for start in shard.select(range(0, len(labels), self._batch_size)):
            yield {
                "features": features[start : start + self._batch_size],
                "labels": labels[start : start + self._batch_size],
            }

    def class_counts(self) -> str:
        """Count the flowers of each species in both splits."""
        counts = []
        for split, (_, labels) in (("train", self._train), ("test", self._test)):
            per_species = np.bincount(labels, minlength=len(SPECIES))
            counts.append(
                f"{split}: " + ", ".join(f"{s} {n}" for s, n in zip(SPECIES, per_species, strict=True))
            )
        return "\n".join(counts)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    features = np.array([[float(value) for key, value in row.items() if key != "species"] for row in rows])
    labels = np.array([SPECIES.index(row["species"]) for row in rows])
    return features.astype(np.float32), labels.astype(np.int64)
