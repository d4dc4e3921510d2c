"""Turn the form the emloop documentation names, ``url_root`` (a base URL, or a list of mirror roots) plus
``download_filenames``, into ``download_urls`` entries.

Datasets call this when they are built, for ``info`` and ``stream`` too, so it imports nothing of the
download machinery; the entries are checked when they are downloaded (``entry.py``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from emloop_ds.core.errors import ConfigError

__all__ = ["entries_from_url_root"]


def entries_from_url_root(url_root: Any, download_filenames: Any) -> list[dict[str, Any]]:
    """Return the ``download_urls`` entries that ``url_root`` and ``download_filenames`` stand for.

    ``url_root`` is a base URL or a list of mirror roots; each item of ``download_filenames`` is a file
    name relative to the roots, or a mapping of ``filename`` and the options of a ``download_urls`` entry
    (``sha256``/``md5``, ``extract``, ``max_extract_size``).

    Raises:
        ConfigError: if either is missing or malformed.
    """
    roots = [url_root] if isinstance(url_root, str) else url_root
    if not isinstance(roots, list) or not roots or not all(isinstance(r, str) and r.strip() for r in roots):
        raise ConfigError(
            f"url_root {url_root!r} is not a URL or a list of URLs; write e.g. "
            "`url_root: https://example.org/data/`"
        )
    if not isinstance(download_filenames, list):
        raise ConfigError(
            "url_root is given but download_filenames is not a list; list the files to download under "
            "url_root, e.g. `download_filenames: [train.tar.gz]`"
        )
    entries = []
    for index, item in enumerate(download_filenames):
        options = dict(item) if isinstance(item, Mapping) else {"filename": item}
        name = options.pop("filename", None)
        if not isinstance(name, str) or not name.strip("/") or "url" in options:
            raise ConfigError(
                f"download_filenames[{index}] is {item!r}; write a file name, or a mapping with `filename:` "
                "and options such as `md5:` (without `url:`)"
            )
        quoted = urllib.parse.quote(name.strip("/"))
        entries.append({"url": [f"{root.strip().rstrip('/')}/{quoted}" for root in roots], **options})
    return entries
