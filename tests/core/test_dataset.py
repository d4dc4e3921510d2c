"""The dataset classes: YAML decoding, _configure_dataset, DownloadableDataset properties, stream_info."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from emloop_ds import AbstractDataset, BaseDataset, Batch, ConfigError, DownloadableDataset


class Recorder(BaseDataset):
    def _configure_dataset(self, output_dir: str | None, **kwargs: Any) -> None:
        self.output_dir = output_dir
        self.kwargs = kwargs


def test_abstract_dataset_accepts_a_config_string() -> None:
    assert isinstance(AbstractDataset("dataset: {}"), AbstractDataset)


def test_base_dataset_passes_decoded_keys_and_output_dir() -> None:
    dataset = Recorder("batch_size: 4\nsizes: [1, 2]\noutput_dir: /tmp/out\n")
    assert dataset.output_dir == "/tmp/out"
    assert dataset.kwargs == {"batch_size": 4, "sizes": [1, 2]}


def test_base_dataset_without_output_dir_passes_none() -> None:
    assert Recorder("a: 1").output_dir is None
    assert Recorder("").kwargs == {}


def test_base_dataset_expands_anchors_and_merge_keys() -> None:
    dataset = Recorder("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n")
    assert dataset.kwargs["derived"] == {"x": 1, "y": 2}


def test_base_dataset_rejects_a_non_mapping_config() -> None:
    with pytest.raises(ConfigError, match="not a mapping"):
        Recorder("[1, 2]")


def test_subclass_without_configure_dataset_fails_clearly() -> None:
    class Forgetful(BaseDataset):
        pass

    with pytest.raises(NotImplementedError, match=r"Forgetful must override _configure_dataset"):
        Forgetful("a: 1")


def test_downloadable_dataset_stores_data_root_and_urls() -> None:
    dataset = DownloadableDataset("data_root: data/x\ndownload_urls: [http://h/a.zip]\nbatch_size: 2\n")
    assert dataset.data_root == "data/x"
    assert list(dataset.download_urls) == ["http://h/a.zip"]


@pytest.mark.parametrize("key", ["data_root", "download_urls"])
def test_downloadable_dataset_names_the_missing_key(key: str) -> None:
    dataset = DownloadableDataset("{}")
    with pytest.raises(ConfigError, match=f"has no {key}; add `{key}:"):
        getattr(dataset, key)


def test_downloadable_dataset_properties_can_be_overridden() -> None:
    class Fixed(DownloadableDataset):
        @property
        def data_root(self) -> str:
            return "fixed"

    assert Fixed("{}").data_root == "fixed"


class Streams(BaseDataset):
    def _configure_dataset(self, output_dir: str | None, **kwargs: Any) -> None:
        pass

    def train_stream(self) -> Iterator[Batch]:
        yield {"x": [1, 5, 3], "words": [[1], [1, 2], [3]]}

    def broken_stream(self) -> Iterator[Batch]:
        raise RuntimeError("disk on fire")


def test_stream_info_logs_sources_and_warns_of_ragged_and_broken(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="emloop_ds"):
        result = Streams("").stream_info()
    assert result is None
    text = caplog.text
    assert "x: int64 [3]  range 1 - 5" in text
    assert "stream `train` source `words` appears to be ragged" in text
    assert "stream `broken` is broken: RuntimeError: disk on fire" in text
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2


class Suspicious(BaseDataset):
    def _configure_dataset(self, output_dir: str | None, **kwargs: Any) -> None:
        pass

    def train_stream(self) -> Iterator[Batch]:
        yield {"x": [float("nan"), 1.0, float("-inf")], "y": [1, 2, 3]}
        yield {"x": [2.0], "y": [4]}

    def valid_stream(self) -> Iterator[Batch]:
        yield {"x": [1.0, 2.0], "y": [1]}


def test_stream_info_warns_of_nan_and_unequal_lengths(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="emloop_ds"):
        Suspicious("").stream_info(batches=2)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        "stream `train` source `x` holds 1 NaN, 0 +inf, 1 -inf",
        "stream `valid` is broken: batch 1 has sources of unequal length (`x` 2, `y` 1); "
        "make every source of a batch hold one value per example",
    ]
    assert "x: float64 [None]  range 1.0 - 2.0" in caplog.text
