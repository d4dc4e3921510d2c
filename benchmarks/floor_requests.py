"""The least a durable Python downloader on requests does: the floor that bench_download.py compares against.

Run by ``bench_download.py`` as ``python floor_requests.py [--group] OUT_FOLDER URL...``: one
``requests.Session`` shared by 8 threads (a pool of 8 connections), each file written to a part file,
fsynced and renamed, and the folder fsynced once at the end. With ``--group`` no file is fsynced alone:
once all are written, one ``syncfs`` makes them durable together, then they are renamed (group durability
at its cheapest: one group for the whole run). No config, checksum, record, lock, retry or progress: what
is left is Python's start-up, importing requests, HTTP through urllib3 and the durable write.
"""

from __future__ import annotations

import ctypes
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import requests


def main() -> None:
    """Download each URL into the folder given first, 8 at a time, durably."""
    arguments = sys.argv[1:]
    group = arguments[0] == "--group"
    folder, urls = arguments[group], arguments[group + 1 :]
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
                if not group:
                    os.fsync(part.fileno())
        if not group:
            os.rename(target + ".part", target)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, urls))
    if group:
        descriptor = os.open(folder, os.O_RDONLY)
        if ctypes.CDLL(None, use_errno=True).syncfs(descriptor) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
        os.close(descriptor)
        for url in urls:
            target = os.path.join(folder, url.rpartition("/")[2])
            os.rename(target + ".part", target)
    descriptor = os.open(folder, os.O_RDONLY)
    os.fsync(descriptor)
    os.close(descriptor)


if __name__ == "__main__":
    main()
