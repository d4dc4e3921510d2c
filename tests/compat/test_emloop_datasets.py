"""Datasets written as emloop's examples write them, with emloop's full training configs, through the CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

import emloop as el
from emloop_ds.cli.main import cli
from emloop_ds.core.config import load_config
from emloop_ds.core.factory import create_dataset
from tests.http_server import LoopbackServer

WriteDataset = Callable[..., Path]

MAJORITY = """
import logging

import emloop as el
import numpy as np


class Data(el.BaseDataset):
    \"\"\"Vectors of 0s and 1s, labelled 1 where most of them are 1s.\"\"\"

    def _configure_dataset(self, n_examples: int, dim: int, batch_size: int, **kwargs) -> None:
        self.batch_size = batch_size
        self.dim = dim
        rng = np.random.default_rng(42)
        x = rng.integers(0, 2, size=(n_examples, dim)).astype(np.float32)
        y = (x.sum(axis=1) > dim // 2).astype(np.int64)
        split = int(0.8 * n_examples)
        self._train_x, self._train_y = x[:split], y[:split]
        self._test_x, self._test_y = x[split:], y[split:]
        logging.info("Dataset created with %d train and %d test examples", split, n_examples - split)

    def _batches(self, x: np.ndarray, y: np.ndarray) -> el.Stream:
        for i in range(0, len(x), self.batch_size):
            yield {"x": x[i : i + self.batch_size], "y": y[i : i + self.batch_size]}

    def train_stream(self) -> el.Stream:
        return self._batches(self._train_x, self._train_y)

    def test_stream(self) -> el.Stream:
        return self._batches(self._test_x, self._test_y)

    def majority_ratio(self) -> float:
        return float(self._train_y.mean())
"""

TRAINING_CONFIG = """
dataset:
  class: {module}.Data
  n_examples: 50
  dim: 11
  batch_size: 4

model:
  name: MajorityExample
  class: majority_net.MajorityNet
  optimizer:
    class: AdamOptimizer
    learning_rate: 0.001
  inputs: [x]
  outputs: [output, loss]

main_loop:
  extra_streams: [test]
  skip_zeroth_epoch: true

hooks:
  - ComputeStats:
      variables: [loss]
  - LogVariables
  - StopAfter:
      epochs: 10
"""

GZIP_DATASET = """
import gzip
import os

import emloop as el
import numpy as np
from emloop.types import Batch


class Data(el.DownloadableDataset):
    \"\"\"Numbers in gzipped text files, one per line, fetched from ``base_url``.\"\"\"

    def _configure_dataset(self, base_url: str, data_root: str, batch_size: int = 3, **kwargs) -> None:
        self._data_root = data_root
        self._download_urls = [base_url + "/train.txt.gz", base_url + "/test.txt.gz"]
        self._batch_size = batch_size

    def _read(self, filename: str) -> np.ndarray:
        with gzip.open(os.path.join(self.data_root, filename), "rt") as file:
            return np.array([int(line) for line in file], dtype=np.int64)

    def _stream(self, filename: str) -> el.Stream:
        numbers = self._read(filename)
        for i in range(0, len(numbers), self._batch_size):
            batch: Batch = {"number": numbers[i : i + self._batch_size]}
            yield batch

    def train_stream(self) -> el.Stream:
        return self._stream("train.txt.gz")

    def test_stream(self) -> el.Stream:
        return self._stream("test.txt.gz")

    def count(self) -> dict:
        return {"train": len(self._read("train.txt.gz")), "test": len(self._read("test.txt.gz"))}
"""

GZIP_CONFIG = """
dataset:
  class: {module}.Data
  data_root: data
  batch_size: 3

model:
  class: model.Model
  inputs: [number]
  outputs: [prediction]

main_loop:
  extra_streams: [test]

hooks:
  - StopAfter:
      epochs: 1
"""


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["dataset", *map(str, args)])


def serve_numbers(server: LoopbackServer) -> str:
    """Serve train.txt.gz (1 to 10) and test.txt.gz (100 to 104); return their base URL."""
    for name, numbers in (("train", range(1, 11)), ("test", range(100, 105))):
        server.add(f"/numbers/{name}.txt.gz", gzip.compress("".join(f"{n}\n" for n in numbers).encode()))
    return server.base_url + "/numbers"


def test_a_base_dataset_with_a_training_config_shows_its_streams(write_dataset: WriteDataset) -> None:
    config = write_dataset(MAJORITY, TRAINING_CONFIG)
    result = invoke("info", config, "--json")
    assert result.exit_code == 0, result.stderr
    streams = {stream["name"]: stream for stream in json.loads(result.stdout)["streams"]}
    assert sorted(streams) == ["test", "train"]
    sources = {source["name"]: source for source in streams["train"]["sources"]}
    assert sources["x"]["dtype"] == "float32"
    assert sources["x"]["shape"] == [4, 11]
    assert sources["y"]["dtype"] == "int64"
    assert "Dataset created with 40 train and 10 test examples" in result.stderr


def test_a_base_dataset_streams_and_runs_its_own_method(write_dataset: WriteDataset) -> None:
    config = write_dataset(MAJORITY, TRAINING_CONFIG)
    streamed = invoke("stream", config, "--stream", "test", "--epochs", "2", "--json")
    assert streamed.exit_code == 0, streamed.stderr
    summary = json.loads(streamed.stdout)
    assert (summary["stream"], summary["batches"], summary["examples"]) == ("test", 6, 20)

    ratio = invoke("majority-ratio", config, "dataset.n_examples=100", "--json")
    assert ratio.exit_code == 0, ratio.stderr
    dataset = create_dataset(load_config(config, ["dataset.n_examples=100"]))
    assert json.loads(ratio.stdout) == dataset.majority_ratio()
    assert 0 < json.loads(ratio.stdout) < 1


def test_a_base_dataset_reads_through_emloops_stream_wrapper(write_dataset: WriteDataset) -> None:
    dataset = create_dataset(load_config(write_dataset(MAJORITY, TRAINING_CONFIG)))
    assert isinstance(dataset, el.BaseDataset)
    profile: dict[str, list[float]] = {}  # emloop's MainLoop passes its epoch's el.TimeProfile
    with el.StreamWrapper(dataset.train_stream, 2, 4, "train", profile) as stream:
        epochs = [[len(batch["x"]) for batch in stream] for _ in range(3)]
    assert epochs == [[4, 4, 4, 4]] * 3
    assert len(profile["read_batch_train"]) == 12


def test_a_downloadable_dataset_downloads_then_streams_its_gzip_files(
    write_dataset: WriteDataset, http_server: LoopbackServer, tmp_path: Path
) -> None:
    config = write_dataset(GZIP_DATASET, GZIP_CONFIG)
    overrides = [f"dataset.base_url={serve_numbers(http_server)}", f"dataset.data_root={tmp_path / 'data'}"]

    downloaded = invoke("download", config, *overrides)
    assert downloaded.exit_code == 0, downloaded.stderr
    assert "2 files" in downloaded.stdout
    assert "2 downloaded" in downloaded.stdout
    files = sorted(path.name for path in (tmp_path / "data").iterdir() if not path.name.startswith("."))
    assert files == ["test.txt.gz", "train.txt.gz"]

    again = invoke("download", config, *overrides)
    assert again.exit_code == 0, again.stderr
    assert "already complete" in again.stdout
    assert len(http_server.requests()) == 2

    streamed = invoke("stream", config, *overrides, "--json")
    assert streamed.exit_code == 0, streamed.stderr
    assert (json.loads(streamed.stdout)["batches"], json.loads(streamed.stdout)["examples"]) == (4, 10)

    info = invoke("info", config, *overrides, "--json")
    assert info.exit_code == 0, info.stderr
    train = next(stream for stream in json.loads(info.stdout)["streams"] if stream["name"] == "train")
    assert train["sources"][0]["name"] == "number"

    counted = invoke("count", config, *overrides, "--json")
    assert counted.exit_code == 0, counted.stderr
    assert json.loads(counted.stdout) == {"train": 10, "test": 5}


def test_the_installed_command_runs_an_emloop_dataset(
    write_dataset: WriteDataset, http_server: LoopbackServer, tmp_path: Path, emloop_command: str
) -> None:
    config = write_dataset(GZIP_DATASET, GZIP_CONFIG)
    overrides = [f"dataset.base_url={serve_numbers(http_server)}", f"dataset.data_root={tmp_path / 'data'}"]
    for args in (["download"], ["count", "--json"]):
        done = subprocess.run(
            [emloop_command, "dataset", args[0], str(config), *overrides, *args[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"train": 10, "test": 5}
