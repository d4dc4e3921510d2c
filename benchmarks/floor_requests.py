"""The least a durable Python downloader on requests does: the floor that bench_download.py compares against.

Run by ``bench_download.py`` as ``python floor_requests.py OUT_FOLDER URL...``: one ``requests.Session``
shared by 8 threads (a pool of 8 connections), each file written to a part file, fsynced and renamed, and
the folder fsynced once at the end. No config, checksum, record, lock, retry or progress: what is left is
Python's start-up, importing requests, HTTP through urllib3 and the durable write that issue 9 requires.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import requests


def main() -> None:
    """Download each URL into the folder given first, 8 at a time, durably."""
    folder, urls = sys.argv[1], sys.argv[2:]
    os.makedirs(folder, exist_ok=True)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=8)
    session.mount("http://", adapter)

    def fetch(url: str) -> None:
        target = os.path.join(folder, url.rpartition("/")[2])
        with session.get(url, stream=True, timeout=30) as response:
            response.raise_for_status()
            with open(target + ".part", "wb") as part:
                for chunk in response.iter_content(512 * 1024):
                    part.write(chunk)
                part.flush()
                os.fsync(part.fileno())
        os.rename(target + ".part", target)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, urls))
    descriptor = os.open(folder, os.O_RDONLY)
    os.fsync(descriptor)
    os.close(descriptor)


if __name__ == "__main__":
    main()
