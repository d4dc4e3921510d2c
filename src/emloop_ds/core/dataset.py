"""Define the dataset concept and its Python base classes, as the emloop documentation describes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from emloop_ds.core.errors import ConfigError

if TYPE_CHECKING:
    from emloop_ds.core.download.progress import Progress

__all__ = ["AbstractDataset", "BaseDataset", "DownloadableDataset"]


class AbstractDataset:
    """Prescribe the API required from every emloop dataset.

    Every dataset has a constructor taking a YAML string config. Any public ``<name>_stream`` method
    makes the stream ``name`` available; it returns an iterable of batches.
    """

    def __init__(self, config_str: str) -> None:
        """Create a new dataset configured with the given YAML string (obligatory).

        The string is kept, so that worker processes can rebuild the dataset from its class and config.
        """
        self._config_str = config_str


class BaseDataset(AbstractDataset):
    """Base class for datasets written in Python.

    A subclass overrides ``_configure_dataset`` and implements ``<name>_stream`` methods, such as
    ``train_stream``.
    """

    def __init__(self, config_str: str) -> None:
        """Decode the YAML config string and pass the obtained arguments to ``_configure_dataset``.

        Raises:
            ConfigError: if the string is not YAML holding a mapping.
        """
        from emloop_ds.core.config import decode_yaml

        super().__init__(config_str)
        config = decode_yaml(config_str, source=f"{type(self).__name__} config") or {}
        if not isinstance(config, dict):
            raise ConfigError(
                f"{type(self).__name__} config is a {type(config).__name__}, not a mapping; "
                "pass a YAML mapping of the dataset's arguments"
            )
        output_dir = config.pop("output_dir", None)
        self._configure_dataset(output_dir=output_dir, **config)

    def _configure_dataset(self, output_dir: str | None, **kwargs: Any) -> None:
        """Configure the dataset with the arguments decoded from the YAML config.

        Args:
            output_dir: folder for logs and other outputs, ``None`` if there is none.
            kwargs: the keys of the config's ``dataset`` section.

        Raises:
            NotImplementedError: if not overridden.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override _configure_dataset(self, output_dir, **kwargs) "
            "to receive its config"
        )

    def stream_info(self, batches: int = 1) -> None:
        """Check and report source names, dtypes and shapes of all the streams available.

        The report goes to the ``emloop_ds`` logger; broken streams (including sources of unequal length),
        ragged sources and sources holding NaN or infinities are warnings.
        ``emloop_ds.inspect_dataset`` returns the same findings as data.
        """
        import logging

        from emloop_ds.core.schema import inspect_dataset

        logger = logging.getLogger("emloop_ds")
        info = inspect_dataset(self, batches=batches)
        logger.info("Found %d streams: %s", len(info.streams), ", ".join(s.name for s in info.streams))
        for stream in info.streams:
            if stream.error is not None:
                logger.warning("stream `%s` is broken: %s", stream.name, stream.error)
                continue
            logger.info("stream `%s`:", stream.name)
            for source in stream.sources:
                value_range = "" if source.min is None else f"  range {source.min} - {source.max}"
                shape = "unknown" if source.shape is None else list(source.shape)
                logger.info("  %s: %s %s%s", source.name, source.dtype, shape, value_range)
                if source.ragged:
                    logger.warning("stream `%s` source `%s` appears to be ragged", stream.name, source.name)
                if source.non_finite:
                    logger.warning(
                        "stream `%s` source `%s` holds %d NaN, %d +inf, %d -inf",
                        *(stream.name, source.name, source.nan, source.posinf, source.neginf),
                    )


class DownloadableDataset(BaseDataset):
    """Base class for datasets whose files are downloaded into ``data_root`` from ``download_urls``.

    Both usually come from the config; a subclass may instead implement them as properties.
    """

    _data_root: str | None = None
    _download_urls: Iterable[str | Mapping[str, Any]] | None = None

    def _configure_dataset(  # type: ignore[override]
        self,
        data_root: str | None = None,
        download_urls: Iterable[str | Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        """Save ``data_root`` and ``download_urls`` as the default implementation of their properties."""
        self._data_root = data_root
        self._download_urls = download_urls

    @property
    def data_root(self) -> str:
        """Path to the data root directory.

        Raises:
            ConfigError: if the config gave no ``data_root``.
        """
        if self._data_root is None:
            raise ConfigError(
                f"{type(self).__name__} has no data_root; add `data_root: <folder>` to the dataset section "
                "of the config or override the data_root property"
            )
        return self._data_root

    @property
    def download_urls(self) -> Iterable[str | Mapping[str, Any]]:
        """A list of URLs to be downloaded.

        Raises:
            ConfigError: if the config gave no ``download_urls``.
        """
        if self._download_urls is None:
            raise ConfigError(
                f"{type(self).__name__} has no download_urls; add `download_urls:` with a list of URLs to "
                "the dataset section of the config or override the download_urls property"
            )
        return self._download_urls

    def download(
        self,
        *,
        jobs: int = 4,
        timeout_s: float = 30.0,
        force: bool = False,
        progress: Progress | None = None,
    ) -> None:
        """Maybe download and extract the extra files required.

        If not already downloaded, download all files specified by ``download_urls``, verifying their
        checksums; then extract the downloaded archives to ``data_root``. Files already complete cost no
        request. The same as ``emloop dataset download <config>``.

        Args:
            jobs: how many files to download at once.
            timeout_s: how long a connection may stay silent before the attempt is retried.
            force: download every file again, even those already complete.
            progress: where to report progress; by default a tqdm bar per file (a widget in notebooks).
                Pass ``emloop_ds.NoProgress()`` for silence.

        Raises:
            ConfigError: if ``data_root`` or ``download_urls`` is missing or invalid.
            DownloadError: if any file could not be fetched, verified or extracted, after the others finished.
        """
        import logging

        from emloop_ds.core.download.fetch import fetch_dataset, raise_failures
        from emloop_ds.core.download.progress import TqdmProgress

        results = fetch_dataset(
            self.data_root,
            self.download_urls,
            jobs=jobs,
            timeout_s=timeout_s,
            force=force,
            progress=TqdmProgress(leave=True) if progress is None else progress,
        )
        logger = logging.getLogger("emloop_ds")
        for result in results:
            if result.error is None:
                logger.info("%s: %s (%s)", result.filename, result.status, result.checksum)
        raise_failures(results)
