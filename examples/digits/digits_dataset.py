"""Handwritten digits as the whole pipeline a user copies: download, decode once, cache, shuffle, augment.

- ``download`` fetches ``digits-png.tar.gz`` (one PNG per example; ``make_mirror.py`` builds it) and
  extracts it into ``data_root``.
- ``decoded_stream`` is the slow, deterministic part: it decodes and resizes the PNGs with Pillow, in
  Python, holding the GIL. It is shardable, so ``--workers N`` spreads it over N processes.
- ``train_stream`` is the fast, random part: it reads ``decoded`` from its stream cache, shuffled anew each
  pass, and augments each shard with its own seed (``shard.seed``). The cache is built on first use (or
  ahead of time by ``emloop dataset cache examples/digits --stream decoded --workers 2``); every later
  epoch and run replays it at memory speed instead of decoding again.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from emloop_ds import Batch, DownloadableDataset, Shard, StreamError


class DigitsDataset(DownloadableDataset):
    """Serve 1,797 digits as ``images`` (uint8, N×size×size) and ``labels`` (int64, 0..9)."""

    def _configure_dataset(
        self,
        output_dir: str | None,
        data_root: str | None = None,
        url_root: str | list[Any] | None = None,
        download_filenames: list[Any] | None = None,
        download_urls: list[Any] | None = None,
        batch_size: int = 64,
        size: int = 32,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise ValueError(f"unknown config keys: {', '.join(sorted(kwargs))}")
        if batch_size < 1 or size < 8:
            raise ValueError(f"batch_size must be 1 or more and size 8 or more, got {batch_size}, {size}")
        super()._configure_dataset(
            data_root=data_root,
            download_urls=download_urls,
            url_root=url_root,
            download_filenames=download_filenames,
        )
        self._batch_size = batch_size
        self._size = size
        self._seed = seed

    def decoded_stream(self, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:
        """Yield this shard's batches of decoded, resized images in file order (deterministic)."""
        files, labels = self._index()
        for start in shard.select(range(0, len(files), self._batch_size)):
            names = files[start : start + self._batch_size]
            images = np.stack([self._decode(name) for name in names])
            yield {"images": images, "labels": labels[start : start + self._batch_size]}

    def train_stream(self, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:
        """Yield the cached ``decoded`` examples, a new permutation each pass, randomly shifted and dimmed."""
        rng = np.random.default_rng(shard.seed(self._seed))
        for batch in self.cached("decoded", shard=shard, shuffle=True, seed=self._seed):
            yield {"images": augment(batch["images"], rng), "labels": batch["labels"]}

    def _decode(self, name: str) -> np.ndarray:
        with Image.open(Path(self.data_root) / "digits" / "images" / name) as image:
            resized = image.convert("L").resize((self._size, self._size), Image.Resampling.BILINEAR)
            return np.asarray(resized, dtype=np.uint8)

    def _index(self) -> tuple[list[str], np.ndarray]:
        """Read ``labels.csv``: the image file names and their labels."""
        path = Path(self.data_root) / "digits" / "labels.csv"
        try:
            with open(path, encoding="ascii") as file:
                rows = list(csv.reader(file))
        except FileNotFoundError as exc:
            raise StreamError(
                f"{path} does not exist; run `emloop dataset download` with this config first"
            ) from exc
        return [row[0] for row in rows], np.array([int(row[1]) for row in rows], dtype=np.int64)


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to 2 pixels and scale its brightness by 0.8 to 1.0."""
    out = np.empty_like(images)
    shifts = rng.integers(-2, 3, size=(len(images), 2))
    gains = rng.uniform(0.8, 1.0, size=len(images))
    for row, (image, (down, right), gain) in enumerate(zip(images, shifts, gains, strict=True)):
        out[row] = (np.roll(image, (down, right), axis=(0, 1)) * gain).astype(np.uint8)
    return out
