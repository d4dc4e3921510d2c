"""MNIST handwritten digits as an emloop dataset whose four IDX files are downloaded into data_root."""

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emloop_ds import Batch, DownloadableDataset, Shard, StreamError

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


class MNISTDataset(DownloadableDataset):
    """Serve the 60 000 training and 10 000 test digits; `emloop dataset download` fetches them first."""

    def _configure_dataset(
        self,
        output_dir: str | None,
        data_root: str | None = None,
        url_root: str | list | None = None,
        download_filenames: list | None = None,
        download_urls: list | None = None,
        batch_size: int = 100,
        seed: int = 0,
        **kwargs,
    ) -> None:
        if kwargs:
            raise ValueError(f"unknown config keys: {', '.join(sorted(kwargs))}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        super()._configure_dataset(
            data_root=data_root,
            download_urls=download_urls,
            url_root=url_root,
            download_filenames=download_filenames,
        )
        self._batch_size = batch_size
        self._seed = seed
        self._passes = 0
        self._splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def train_stream(self, shard: Shard | None = None) -> Iterator[Batch]:
        """Yield shuffled batches of `images` (uint8, N×28×28) and `labels`, reshuffled for each pass.

        With `shard`, yield only its batches: every shard of a pass shuffles with the seed shared by the
        pass, then selects, so the shards partition one permutation. Without one (as emloop calls it), the
        dataset counts its passes itself and shuffles each exactly as the shards of that pass would.
        """
        if shard is None:
            shard = Shard(0, 1, epoch=self._passes)
            self._passes += 1
        images, labels = self._split("train")
        order = np.random.default_rng(shard.shared_seed(self._seed)).permutation(len(labels))
        yield from _batches(images, labels, self._batch_size, shard, order)

    def test_stream(self, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:
        """Yield the test batches in file order; with `shard`, only its batches."""
        images, labels = self._split("test")
        yield from _batches(images, labels, self._batch_size, shard, np.arange(len(labels)))

    def _split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Read a split's files on first use: the dataset is built before `download` fetches them."""
        if name not in self._splits:
            images_file, labels_file = (Path(self.data_root) / filename for filename in FILES[name])
            images, labels = read_idx(images_file, IMAGES_MAGIC), read_idx(labels_file, LABELS_MAGIC)
            if len(images) != len(labels):
                raise StreamError(
                    f"{images_file} has {len(images)} images but {labels_file} {len(labels)} labels"
                )
            self._splits[name] = images, labels
        return self._splits[name]


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (the format of the MNIST files)."""
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError as exc:
        raise StreamError(
            f"{path} does not exist; run `emloop dataset download` with this config first"
        ) from exc
    except (OSError, EOFError) as exc:
        raise StreamError(f"cannot read {path}: {exc}; download it again with --force") from exc
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise StreamError(f"{path} is not an MNIST IDX file (magic {found:#010x}, expected {magic:#010x})")
    dimensions = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def _batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, shard: Shard, order: np.ndarray
) -> Iterator[Batch]:
    """Yield the shard's batches of the examples taken in `order`."""
    for start in shard.select(range(0, len(labels), batch_size)):
        rows = order[start : start + batch_size]
        yield {"images": images[rows], "labels": labels[rows]}
