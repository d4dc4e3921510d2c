"""Datasets for the stream-cache tests, importable by name so that worker processes can rebuild them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emloop_ds import BaseDataset, Shard
from tests.core.cache.helpers import mixed_batches


class MixedDataset(BaseDataset):
    """A slow-to-make ``decoded`` stream of mixed sources, and a ``train`` stream reading it cached."""

    def _configure_dataset(
        self,
        output_dir: str | None,
        batches: int = 7,
        log_dir: str | None = None,
        shuffle: bool = False,
        **kwargs: Any,
    ) -> None:
        self._batches = batches
        self._log_dir = log_dir
        self._shuffle = shuffle

    def decoded_stream(self, shard: Shard = Shard(0, 1)) -> Iterator[dict[str, Any]]:
        """Yield this shard's part of ``mixed_batches``, logging each call (one line per pass made)."""
        if self._log_dir is not None:
            with open(Path(self._log_dir) / "calls.log", "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()} {shard.index} {shard.count} {shard.epoch}\n")
        yield from shard.select(mixed_batches(self._batches))

    def train_stream(self, shard: Shard = Shard(0, 1)) -> Iterator[dict[str, Any]]:
        """Yield the cached ``decoded`` batches of this shard, each with noise seeded by the shard."""
        rng = np.random.default_rng(shard.seed(3))
        for batch in self.cached("decoded", shard=shard, shuffle=self._shuffle, seed=7):
            yield {**batch, "noise": rng.random(len(batch["label"]))}

    def objects_stream(self) -> Iterator[dict[str, Any]]:
        """Yield a source that Arrow cannot hold."""
        for number in range(3):
            yield {"label": [number], "thing": [object()]}


def calls(log_dir: Path) -> list[str]:
    """Return the lines that ``decoded_stream`` logged: one per pass it made."""
    log = Path(log_dir) / "calls.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []
