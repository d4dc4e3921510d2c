"""Build a cache in a subprocess, for the kill and concurrency tests (run as ``python build_script.py``).

``build PATH BATCHES``: append batches, printing each count; ``locked PATH BATCHES``: take the build lock,
say whether it had to wait, build (after a line on stdin when it got the lock at once) or read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from filelock import Timeout

from emloop_ds.core.cache import CacheReader, CacheWriter, build_lock, is_sealed


def _build(path: Path, batches: int) -> None:
    with CacheWriter(path, fingerprint="f" * 64, description="script", chunk_rows=64) as writer:
        for number in range(batches):
            writer.append({"x": np.full((16, 256), number, np.float32), "label": np.arange(16) + 16 * number})
            print(f"batch {number + 1}", flush=True)
        print("sealing", flush=True)
        writer.seal()
    print("sealed", flush=True)


def main() -> None:
    mode, path, batches = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if mode == "build":
        _build(path, batches)
        return
    lock = build_lock(path)
    try:
        lock.acquire(timeout=0)
        print("locked", flush=True)
        sys.stdin.readline()
    except Timeout:
        print("waiting", flush=True)
        lock.acquire()
    with lock:
        if is_sealed(path):
            with CacheReader.open(path) as reader:
                print(f"read {reader.example_count}", flush=True)
        else:
            _build(path, batches)
            print("built", flush=True)
    lock.release()


if __name__ == "__main__":
    main()
