"""Define the dataset concept and its Python base classes, as the emloop documentation describes them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from emloop_ds.core.errors import ConfigError, DatasetError, EmloopDsError, describe_exception

if TYPE_CHECKING:
    from emloop_ds.core.download.progress import Progress
    from emloop_ds.core.stream.shard import Shard
    from emloop_ds.core.types import Batch

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
        from emloop_ds.core.config import decode_yaml, describe_type

        super().__init__(config_str)
        config = decode_yaml(config_str, source=f"{type(self).__name__} config") or {}
        if not isinstance(config, dict):
            raise ConfigError(
                f"{type(self).__name__} config is {describe_type(config)}, not a mapping; "
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

    def cached(
        self, name: str, shard: Shard | None = None, shuffle: bool = False, seed: int = 0
    ) -> Iterator[Batch]:
        """Return the batches of stream ``name`` (``"decoded"`` for ``decoded_stream``) from its cache.

        The cache is built first, from one whole pass of the stream, if it is missing; the build runs
        under a lock, so that concurrent readers (workers, ranks) wait for one builder. Cache the
        expensive, deterministic part of a pipeline and run the random part after it::

            def train_stream(self, shard=Shard(0, 1)):
                rng = np.random.default_rng(shard.seed(7))
                for batch in self.cached("decoded", shard=shard, shuffle=True, seed=7):
                    yield augment(batch, rng)

        Args:
            name: the cached stream's name without its ``_stream`` suffix.
            shard: read this shard's part of the pass: batches ``index::count`` of the stream's batches,
                or of the shuffled pass's batches, from the shard's batch ``start`` on.
            shuffle: read the pass (``shard.epoch``) as a permutation of all examples fixed by ``seed``,
                re-batched to the size of the stream's first batch.
            seed: the base of the permutations.

        Raises:
            ConfigError: if the dataset has no stream ``name``.
        """
        from emloop_ds.core.cache.build import cached_batches

        return cached_batches(self, name, shard, shuffle, seed)


class DownloadableDataset(BaseDataset):
    """Base class for datasets whose files are downloaded into ``data_root`` from ``download_urls``.

    The typical use-case is that ``data_root``, ``url_root`` and ``download_filenames`` come from the
    config: ``url_root`` (a base URL, or a list of mirror roots) joined with each of
    ``download_filenames`` makes the ``download_urls``. The config may instead give ``download_urls``
    itself, or a subclass may implement ``data_root`` and ``download_urls`` as properties. An exception
    raised by such a property is reported as a ``DatasetError`` naming it (NOTE [download properties]).
    """

    _data_root: str | None = None
    _download_urls: Iterable[str | Mapping[str, Any]] | None = None
    _received_download_keys = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a ``data_root`` or ``download_urls`` property of the subclass: NOTE [download properties]."""
        super().__init_subclass__(**kwargs)
        for name in _DOWNLOAD_KEYS:
            attribute = cls.__dict__.get(name)
            getter = attribute.fget if isinstance(attribute, property) else None
            if isinstance(attribute, property) and getter is not None:
                setattr(cls, name, _reporting_property(name, attribute, getter))

    def _configure_dataset(  # type: ignore[override]
        self,
        data_root: str | None = None,
        download_urls: Iterable[str | Mapping[str, Any]] | None = None,
        url_root: str | list[str] | None = None,
        download_filenames: list[str | Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        """Save the passed values and use them as the default implementation of the properties.

        Raises:
            ConfigError: if both ``download_urls`` and ``url_root`` are given, or ``download_filenames``
                without ``url_root``, or either is malformed.
        """
        self._data_root = data_root
        self._download_urls = download_urls
        self._received_download_keys = True
        if url_root is None and download_filenames is None:
            return
        if download_urls is not None:
            raise ConfigError(
                f"{type(self).__name__} got both download_urls and url_root/download_filenames; "
                "keep one of the two forms in the dataset section of the config"
            )
        if url_root is None:
            raise ConfigError(
                f"{type(self).__name__} got download_filenames but no url_root; add `url_root: <base URL>` "
                "(or a list of mirror roots) to the dataset section of the config"
            )
        from emloop_ds.core.download.url_root import entries_from_url_root

        self._download_urls = entries_from_url_root(url_root, download_filenames)

    @property
    def data_root(self) -> str:
        """Path to the data root directory.

        Raises:
            ConfigError: if the config gave no ``data_root``.
            DatasetError: if the config gave one but ``_configure_dataset`` did not pass it on.
        """
        if self._data_root is None:
            raise self._missing_key_error("data_root", "`data_root: <folder>`")
        return self._data_root

    @property
    def download_urls(self) -> Iterable[str | Mapping[str, Any]]:
        """A list of URLs to be downloaded.

        Raises:
            ConfigError: if the config gave no ``download_urls``.
            DatasetError: if the config gave them but ``_configure_dataset`` did not pass them on.
        """
        if self._download_urls is None:
            raise self._missing_key_error("download_urls", "`download_urls:` with a list of URLs")
        return self._download_urls

    def _missing_key_error(self, key: str, example: str) -> EmloopDsError:
        """Explain why ``key`` is missing: absent from the config, or lost by ``_configure_dataset``."""
        name = type(self).__name__
        if self._config_value(key) is None:
            return ConfigError(
                f"{name} has no {key}; add {example} to the dataset section of the config "
                f"or override the {key} property"
            )
        how = (
            "called super()._configure_dataset() without it"
            if self._received_download_keys
            else "did not call super()._configure_dataset()"
        )
        return DatasetError(
            f"{name}._configure_dataset received {key} from the config but {how}, so it was lost; "
            "pass both on: super()._configure_dataset(data_root=data_root, download_urls=download_urls), "
            f"or override the {key} property"
        )

    def _config_value(self, key: str) -> Any:
        from emloop_ds.core.config import decode_yaml

        try:
            config = decode_yaml(getattr(self, "_config_str", "") or "")
        except ConfigError:
            return None
        return config.get(key) if isinstance(config, dict) else None

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

        from emloop_ds.core.download import TqdmProgress, fetch_dataset, raise_failures

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
            for warning in result.warnings:
                logger.warning("%s", warning)
            if result.error is None:
                logger.info("%s: %s (%s)", result.filename, result.status, result.checksum)
        raise_failures(results)


_DOWNLOAD_KEYS = ("data_root", "download_urls")

# NOTE [download properties]: a subclass may compute data_root or download_urls in a property, which may
# fail (a missing environment variable, an unreadable index file). Both are read by `download()` and by the
# `emloop dataset download` command; a bare KeyError from there would be a traceback, as if emloop-ds had a
# bug. So DownloadableDataset.__init_subclass__ wraps such a property: its exceptions other than our own
# become a DatasetError that names the property, with the original as its cause (shown by --verbose).


def _reporting_property(name: str, original: property, getter: Callable[[Any], Any]) -> property:
    """Return ``original`` with the exceptions of its ``getter`` reported as a ``DatasetError`` naming it."""

    @functools.wraps(getter)
    def get(self: DownloadableDataset) -> Any:
        try:
            return getter(self)
        except EmloopDsError:
            raise
        except Exception as exc:
            raise DatasetError(
                f"{type(self).__name__}.{name} failed: {describe_exception(exc)}; fix the {name} property "
                "(--verbose shows the traceback)"
            ) from exc

    return property(get, original.fset, original.fdel, original.__doc__)
