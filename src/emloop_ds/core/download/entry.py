"""Check a dataset's ``download_urls``: each entry is a URL string or a mapping with ``url`` and options.

An entry's ``url`` may be a list of mirrors, tried in order, with one checksum for all of them. The form
the emloop documentation names, ``url_root`` plus ``download_filenames``, is turned into such entries by
``url_root.entries_from_url_root``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emloop_ds.core.config import describe_type
from emloop_ds.core.download.checksum import ALGORITHMS, Checksum
from emloop_ds.core.download.extract_options import archive_format, parse_size
from emloop_ds.core.download.state import STATE_DIR
from emloop_ds.core.errors import ConfigError

__all__ = ["DownloadEntry", "parse_download_entries", "parse_download_entry"]

_KEYS = ("url", "sha256", "md5", "filename", "extract", "max_extract_size")
_SCHEMES = ("http", "https", "file")
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._+-]")
_HEX = re.compile(r"[0-9a-fA-F]+")
_ARCHIVES = "zip, tar, tar.gz, tgz, tar.bz2, tar.xz"


@dataclass(frozen=True)
class DownloadEntry:
    """One file to download: from where (mirrors in order), under which name, how to verify and extract it."""

    urls: tuple[str, ...]
    filename: str
    checksum: Checksum | None
    extract: bool
    max_extract_bytes: int | None = None
    """The ``max_extract_size`` of the entry; ``None`` for the default bound."""

    @property
    def url(self) -> str:
        """The first URL, which names the file by default."""
        return self.urls[0]


def parse_download_entries(download_urls: Any) -> list[DownloadEntry]:
    """Check every entry of ``download_urls`` and that no two of them save to the same file.

    Raises:
        ConfigError: naming the entry and what is wrong with it.
    """
    if isinstance(download_urls, (str, bytes, Mapping)) or not isinstance(download_urls, Iterable):
        raise ConfigError(
            f"download_urls is {describe_type(download_urls)}, not a list; write it as a YAML list of "
            "URLs or of mappings with `url:`"
        )
    entries = [parse_download_entry(item, index) for index, item in enumerate(download_urls)]
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        earlier = first_index.setdefault(entry.filename, index)
        if earlier != index:
            raise ConfigError(
                f"download_urls[{earlier}] and download_urls[{index}] both save to {entry.filename}; "
                "give one of them another `filename:`"
            )
    return entries


def parse_download_entry(item: Any, index: int = 0) -> DownloadEntry:
    """Check one entry: a URL, or a mapping of ``url`` (one or a list of mirrors) and options.

    Raises:
        ConfigError: naming the entry and what is wrong with it.
    """
    where = f"download_urls[{index}]"
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} is {describe_type(item)}; write a URL, or a mapping with `url:`")
    unknown = sorted(str(key) for key in item if key not in _KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {', '.join(unknown)}; the keys are {', '.join(_KEYS)}")
    urls = _urls(item.get("url"), where)
    filename = _filename(item.get("filename"), urls[0], where)
    return DownloadEntry(
        urls,
        filename,
        _checksum(item, where),
        _extract(item.get("extract"), filename, where),
        _max_extract_bytes(item.get("max_extract_size"), where),
    )


def _urls(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where} has an empty list of URLs; give at least one mirror")
        return tuple(_url(item, f"{where}.url[{number}]") for number, item in enumerate(value))
    return (_url(value, where),)


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} has no `url:`; give the URL of the file to download")
    url = value.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError(
            f"{where}: cannot download {url!r}; the URL must start with http://, https:// or file://"
        )
    if parts.scheme.lower() == "file" and parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{where}: file URL {url!r} names a host; write file:///absolute/path")
    if parts.scheme.lower() != "file" and not parts.hostname:
        raise ConfigError(f"{where}: URL {url!r} has no host; write it as https://host/path")
    return url


def _filename(value: Any, url: str, where: str) -> str:
    if value is None:
        last = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        name = _UNSAFE_CHARACTERS.sub("_", last).lstrip(".")
        if not name:
            raise ConfigError(f"{where}: cannot tell a file name from {url}; add `filename:`")
        return name
    if not isinstance(value, str) or value in ("", ".", "..") or re.search(r"[/\\\0]", value):
        raise ConfigError(
            f"{where}: filename {value!r} is not a plain file name; give a name without folders, "
            "e.g. `filename: train.tar.gz`"
        )
    if value == STATE_DIR:
        raise ConfigError(f"{where}: filename {STATE_DIR} is reserved for emloop-ds; choose another name")
    return value


def _checksum(item: Mapping[str, Any], where: str) -> Checksum | None:
    given = [algorithm for algorithm in ALGORITHMS if item.get(algorithm) is not None]
    if not given:
        return None
    if len(given) > 1:
        raise ConfigError(f"{where} gives both {' and '.join(given)}; keep one of them")
    algorithm = given[0]
    digest, length = item[algorithm], ALGORITHMS[algorithm]
    if not isinstance(digest, str) or len(digest.strip()) != length or not _HEX.fullmatch(digest.strip()):
        raise ConfigError(
            f"{where}: {algorithm} {digest!r} is not {length} hex digits; copy the full digest, in quotes"
        )
    return Checksum(algorithm, digest.strip().lower())


def _extract(value: Any, filename: str, where: str) -> bool:
    is_archive = archive_format(filename) is not None
    if value is None:
        return is_archive
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: extract {value!r} is not true or false")
    if value and not is_archive:
        raise ConfigError(
            f"{where}: cannot extract {filename}: not a recognised archive ({_ARCHIVES}); "
            "remove `extract: true`, or give a `filename:` with the archive's ending"
        )
    return value


def _max_extract_bytes(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
