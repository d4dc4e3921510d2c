"""Run the MNIST example against small generated IDX files served from the loopback server."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from emloop_ds import StreamWrapper
from emloop_ds.cli.main import cli
from emloop_ds.core.config import load_config
from emloop_ds.core.factory import create_dataset
from tests.http_server import LoopbackServer

CONFIG = Path(__file__).parents[2] / "examples" / "mnist" / "config.yaml"


def _idx(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _serve_split(
    server: LoopbackServer, images_name: str, labels_name: str, count: int
) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(count)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    entries = []
    for name, data in ((images_name, _idx(images, 0x803)), (labels_name, _idx(labels, 0x801))):
        server.add(f"/mnist/{name}", data)
        entries.append({"filename": name, "md5": hashlib.md5(data).hexdigest()})
    return entries, images


def test_config_lists_a_maintained_mirror_first_and_the_published_md5s() -> None:
    config = load_config(CONFIG)
    assert config.kwargs["url_root"][0].startswith("https://ossci-datasets.s3.amazonaws.com/")
    assert "yann.lecun.com" in config.kwargs["url_root"][1]
    md5s = {item["filename"]: item["md5"] for item in config.kwargs["download_filenames"]}
    assert md5s["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert md5s["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"


def test_mnist_downloads_from_an_overridden_url_root_and_streams(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    train_entries, train_images = _serve_split(
        http_server, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 250
    )
    test_entries, test_images = _serve_split(
        http_server, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 40
    )
    overrides = [  # the generated files have their own md5s, so download_filenames is overridden too
        f"dataset.data_root={tmp_path / 'mnist'}",
        f"dataset.url_root={http_server.base_url}/mnist/",
        f"dataset.download_filenames={json.dumps(train_entries + test_entries)}",
    ]

    result = CliRunner().invoke(cli, ["dataset", "download", str(CONFIG), *overrides])
    assert result.exit_code == 0, result.stderr
    assert "4 files, 222.4 KiB: 4 downloaded" in result.stdout

    dataset = create_dataset(load_config(CONFIG, overrides))
    first = next(iter(dataset.train_stream()))
    assert first["images"].dtype == np.uint8
    assert first["images"].shape == (100, 28, 28)
    assert sum(len(batch["labels"]) for batch in dataset.train_stream()) == 250
    test_batches = list(dataset.test_stream())
    assert np.array_equal(np.concatenate([batch["images"] for batch in test_batches]), test_images)
    assert int(max(batch["labels"].max() for batch in test_batches)) <= 9
    assert train_images.shape == (250, 28, 28)


def test_mnist_streams_say_to_download_first(tmp_path: Path) -> None:
    dataset = create_dataset(load_config(CONFIG, [f"dataset.data_root={tmp_path}"]))
    result = CliRunner().invoke(cli, ["dataset", "info", str(CONFIG), f"dataset.data_root={tmp_path}"])
    assert result.exit_code == 1  # both streams are broken until the files are downloaded
    assert "run `emloop dataset download` with this config first" in result.stdout
    assert result.stderr.splitlines()[-1].startswith("error: 2 of 2 streams broken: `test`, `train`")
    assert dataset.data_root == str(tmp_path)


def test_mnist_on_two_workers_gives_the_in_process_batches(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    entries = []
    for images, labels, count in (
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 450),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 30),
    ):
        entries += _serve_split(http_server, images, labels, count)[0]
    overrides = [
        f"dataset.data_root={tmp_path / 'mnist'}",
        f"dataset.url_root={http_server.base_url}/mnist/",
        f"dataset.download_filenames={json.dumps(entries)}",
    ]
    result = CliRunner().invoke(cli, ["dataset", "download", str(CONFIG), *overrides])
    assert result.exit_code == 0, result.stderr

    def read(workers: int) -> list[np.ndarray]:
        stream = StreamWrapper(create_dataset(load_config(CONFIG, overrides)).train_stream, workers=workers)
        try:
            with stream:
                return [batch["images"] for _ in range(2) for batch in stream]
        finally:
            stream.close()

    in_process, on_workers = read(0), read(2)
    assert len(in_process) == 10  # 2 epochs of 5 batches
    assert all(np.array_equal(a, b) for a, b in zip(in_process, on_workers, strict=True))
