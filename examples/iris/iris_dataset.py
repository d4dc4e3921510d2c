"""Fisher's Iris measurements as an emloop dataset with a train and a test stream."""

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emloop_ds import BaseDataset, Batch

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
        self._rng = np.random.default_rng(seed)
        features, labels = _read_csv(Path(__file__).parent / csv_file)
        is_test = np.arange(len(labels)) % 5 == 4
        self._train = features[~is_test], labels[~is_test]
        self._test = features[is_test], labels[is_test]

    def train_stream(self) -> Iterator[Batch]:
        """Yield shuffled training batches; each call is one epoch."""
        features, labels = self._train
        order = self._rng.permutation(len(labels))
        yield from _batches(features[order], labels[order], self._batch_size)

    def test_stream(self) -> Iterator[Batch]:
        """Yield the held-out batches in file order."""
        yield from _batches(*self._test, self._batch_size)

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


def _batches(features: np.ndarray, labels: np.ndarray, batch_size: int) -> Iterator[Batch]:
    for start in range(0, len(labels), batch_size):
        yield {"features": features[start : start + batch_size], "labels": labels[start : start + batch_size]}
