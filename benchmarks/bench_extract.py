"""Benchmark extracting an archive of many small files against ``tar -xzf`` and ``tar -xzf`` + ``sync``.

Run: python benchmarks/bench_extract.py [--members N] [--runs N]

Builds a tar.gz of N members of 4 KB (default 2,000) in 20 folders, then prints medians of ``--runs``
interleaved runs (default 5) of: ``extract_archive`` into an empty ``data_root`` (it checks, hashes and
fsyncs every file, journals the merge and records what it extracted); ``tar -xzf`` alone (no fsync, so not
durable); ``tar -xzf`` followed by ``sync -f`` (durable, as ours is); a re-extraction over the archive's own
files; ``find_damaged`` over all N records; and restoring 1% of the files with ``only``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from emloop_ds.core.download.extract import extract_archive, find_damaged

T = TypeVar("T")


def _build(path: Path, members: int) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for index in range(members):
            data = os.urandom(2048) + bytes(2048)
            info = tarfile.TarInfo(f"set/{index % 20:02}/{index:05}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _time(function: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def _run_once(archive: Path, work: Path, run: int, times: dict[str, list[float]]) -> None:
    root = work / f"ours{run}"
    seconds, files = _time(extract_archive, archive, root, max_bytes=10**9)
    times.setdefault("extract_archive", []).append(seconds)
    seconds, _ = _time(extract_archive, archive, root, max_bytes=10**9)
    times.setdefault("  again, over its own files", []).append(seconds)
    seconds, _ = _time(find_damaged, root, files)
    times.setdefault("  find_damaged, nothing damaged", []).append(seconds)
    lost = [file.path for file in files[::100]]  # 1% of the files
    for path in lost:
        (root / path).unlink()
    seconds, _ = _time(extract_archive, archive, root, max_bytes=10**9, only=lost)
    times.setdefault(f"  restore {len(lost)} files with only", []).append(seconds)
    for name, command in {
        "tar -xzf": "tar -xzf {archive} -C {root}",
        "tar -xzf && sync -f": "tar -xzf {archive} -C {root} && sync -f {root}",
    }.items():
        target = work / f"{name.split()[-1]}{run}"
        target.mkdir()
        shell = command.format(archive=archive, root=target)
        seconds, _ = _time(subprocess.run, shell, shell=True, check=True)
        times.setdefault(name, []).append(seconds)


def main() -> None:
    """Time each way of extracting and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000, help="members of 4 KB (default 2000)")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs of each (default 5)")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    try:
        archive = work / "set.tar.gz"
        _build(archive, arguments.members)
        times: dict[str, list[float]] = {}
        for run in range(arguments.runs):
            _run_once(archive, work, run, times)
        print(
            f"extracting {arguments.members:,} members of 4 KB from a tar.gz, median of {arguments.runs} runs"
        )
        for name, seconds in times.items():
            print(
                f"  {name:34s} {statistics.median(seconds) * 1e3:8.1f} ms   min {min(seconds) * 1e3:8.1f} ms"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
