"""The dataset classes: YAML decoding, _configure_dataset, DownloadableDataset properties, stream_info."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from emloop_ds import AbstractDataset, BaseDataset, Batch, ConfigError, DatasetError, DownloadableDataset


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


class ForgetsSuper(DownloadableDataset):
    def _configure_dataset(self, output_dir: str | None, batch_size: int = 1, **kwargs: Any) -> None:
        self.batch_size = batch_size


class PassesOnlyTheRoot(DownloadableDataset):
    def _configure_dataset(  # type: ignore[override]
        self, output_dir: str | None, data_root: str | None = None, **kwargs: Any
    ) -> None:
        super()._configure_dataset(data_root=data_root)


@pytest.mark.parametrize("key", ["data_root", "download_urls"])
def test_a_subclass_not_calling_super_is_told_so_when_the_config_has_the_key(key: str) -> None:
    dataset = ForgetsSuper("data_root: data/x\ndownload_urls: [http://h/a.zip]\n")
    with pytest.raises(DatasetError) as error:
        getattr(dataset, key)
    assert str(error.value) == (
        f"ForgetsSuper._configure_dataset received {key} from the config but did not call "
        "super()._configure_dataset(), so it was lost; pass both on: super()._configure_dataset("
        f"data_root=data_root, download_urls=download_urls), or override the {key} property"
    )
    assert "add `" not in str(error.value)


def test_a_subclass_passing_one_key_is_told_which_one_it_dropped() -> None:
    dataset = PassesOnlyTheRoot("data_root: data/x\ndownload_urls: [http://h/a.zip]\n")
    assert dataset.data_root == "data/x"
    with pytest.raises(DatasetError, match="received download_urls from the config but called super"):
        _ = dataset.download_urls


@pytest.mark.parametrize("config", ["{}", "data_root: null\n", "other: 1\n"])
def test_a_subclass_not_calling_super_without_the_key_is_asked_to_add_it(config: str) -> None:
    with pytest.raises(ConfigError, match="ForgetsSuper has no data_root; add `data_root: <folder>`"):
        _ = ForgetsSuper(config).data_root


class ComputedRoot(DownloadableDataset):
    @property
    def data_root(self) -> str:
        """The folder named by an environment variable."""
        return {"other": "x"}["DATA_HOME"]

    @property
    def download_urls(self) -> list[str]:
        return super().download_urls  # type: ignore[return-value]


def test_a_failing_property_becomes_a_dataset_error_naming_it_with_the_cause() -> None:
    dataset = ComputedRoot("{}")
    with pytest.raises(
        DatasetError, match=r"^ComputedRoot\.data_root failed: KeyError: 'DATA_HOME'; fix"
    ) as error:
        _ = dataset.data_root
    assert isinstance(error.value.__cause__, KeyError)
    assert ComputedRoot.data_root.__doc__ == "The folder named by an environment variable."


def test_our_own_errors_pass_through_a_property_unchanged() -> None:
    with pytest.raises(ConfigError, match="ComputedRoot has no download_urls"):
        _ = ComputedRoot("{}").download_urls
    assert ComputedRoot("download_urls: [u]").download_urls == ["u"]


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
