"""Tests of reading the entries of download_urls."""

from __future__ import annotations

from typing import Any

import pytest

from emloop_ds import ConfigError
from emloop_ds.core.download.checksum import Checksum
from emloop_ds.core.download.entry import DownloadEntry, parse_download_entries

SHA256 = "3A" * 32


def test_url_string_gets_defaults() -> None:
    [entry] = parse_download_entries(["https://example.org/sets/train%20set.tar.gz?token=1"])
    assert entry == DownloadEntry(
        ("https://example.org/sets/train%20set.tar.gz?token=1",), "train_set.tar.gz", None, True
    )


def test_mapping_gives_checksum_filename_and_extract() -> None:
    [entry] = parse_download_entries(
        [{"url": "file:///mirror/extra.zip", "sha256": SHA256, "filename": "x.zip", "extract": False}]
    )
    assert entry == DownloadEntry(
        ("file:///mirror/extra.zip",), "x.zip", Checksum("sha256", SHA256.lower()), False
    )


def test_plain_files_are_not_extracted_by_default() -> None:
    [entry] = parse_download_entries([{"url": "https://example.org/labels.gz", "md5": "a" * 32}])
    assert not entry.extract
    assert entry.checksum == Checksum("md5", "a" * 32)


@pytest.mark.parametrize(
    ("download_urls", "phrase"),
    [
        ("https://example.org/a.zip", "download_urls is a str, not a list"),
        ({"url": "https://example.org/a.zip"}, "download_urls is a dict, not a list"),
        ([42], "download_urls[0] is an int"),
        ([{"sha256": SHA256}], "download_urls[0] has no `url:`"),
        ([{"url": "https://e.org/a", "size": 3}], "download_urls[0] has unknown keys size"),
        (["ftp://example.org/a.zip"], "must start with http://, https:// or file://"),
        (["https:///a.zip"], "has no host"),
        (["file://server/share/a.zip"], "names a host"),
        (["https://example.org/data/"], "cannot tell a file name"),
        ([{"url": "https://e.org/a", "filename": "../a"}], "is not a plain file name"),
        ([{"url": "https://e.org/a", "filename": ".emloop-ds"}], "is reserved"),
        ([{"url": "https://e.org/a", "sha256": SHA256, "md5": "a" * 32}], "gives both sha256 and md5"),
        ([{"url": "https://e.org/a", "sha256": "abc"}], "is not 64 hex digits"),
        ([{"url": "https://e.org/a", "md5": 12345}], "is not 32 hex digits"),
        ([{"url": "https://e.org/a.bin", "extract": True}], "cannot extract a.bin: not a recognised archive"),
        ([{"url": "https://e.org/a.zip", "extract": "yes"}], "extract 'yes' is not true or false"),
        (
            ["https://e.org/x/a.zip", "https://e.org/y/a.zip"],
            "download_urls[0] and download_urls[1] both save",
        ),
    ],
)
def test_invalid_entries_are_config_errors(download_urls: Any, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_download_entries(download_urls)
    assert phrase in str(caught.value)
