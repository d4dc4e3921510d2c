"""What a download entry's extract options mean: which file names are archives, and what a size is.

Kept apart from ``extract``, which only a download of archives needs: parsing a config imports this alone.
"""

from __future__ import annotations

import re

from emloop_ds.core.errors import ConfigError

__all__ = ["ARCHIVE_SUFFIXES", "archive_format", "parse_size"]

ARCHIVE_SUFFIXES = {
    ".zip": "zip",
    ".tar": "tar",
    ".tar.gz": "tar",
    ".tgz": "tar",
    ".tar.bz2": "tar",
    ".tbz2": "tar",
    ".tar.xz": "tar",
    ".txz": "tar",
}
"""File name endings of the archives that are extracted by default, and their format."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]i?b|b)?\s*$", re.IGNORECASE)
_UNIT_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def archive_format(filename: str) -> str | None:
    """Return ``"zip"`` or ``"tar"`` if ``filename`` names a recognised archive, else ``None``."""
    name = filename.lower()
    for suffix, kind in ARCHIVE_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def parse_size(value: int | str) -> int:
    """Return the bytes of a ``max_extract_size``: a whole number or a size like ``5GB``, ``1.5GB``, ``5GiB``.

    kB, MB, GB, TB and PB are powers of 1000; KiB, MiB, GiB, TiB and PiB powers of 1024.

    Raises:
        ConfigError: naming the value, if it is not such a size or not above 0.
    """
    from decimal import Decimal, InvalidOperation  # only for an entry that sets max_extract_size

    if isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        match = _SIZE.match(value) if isinstance(value, str) else None
        if match is None:
            raise _size_error(value)
        try:
            number = Decimal(match[1])
        except InvalidOperation as exc:  # not reached: the pattern admits only decimal numbers
            raise _size_error(value) from exc
        unit = (match[2] or "b").lower()
        if unit != "b":
            number *= (1024 if "i" in unit else 1000) ** _UNIT_POWERS[unit[0]]
    if number < 1:
        raise _size_error(value)
    return int(number)


def _size_error(value: object) -> ConfigError:
    return ConfigError(
        f"invalid max_extract_size {value!r}: give bytes as a whole number, or a size such as 100MB, "
        "1.5GB or 5GiB (GB = 10**9 bytes, GiB = 2**30 bytes)"
    )
