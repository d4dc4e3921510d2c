"""Benchmark the start-up of the ``emloop`` command against importing click alone.

Run: python benchmarks/bench_startup.py [--runs N]

Prints the median and minimum wall time of N interleaved runs (default 10) of ``python -c "import click"``,
``emloop --help``, ``emloop dataset --help`` and ``emloop dataset info`` on the Iris example. The
``emloop`` beside this Python is used, so run it from the environment the project is installed in.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

IRIS = Path(__file__).resolve().parent.parent / "examples" / "iris" / "config.yaml"


def main() -> None:
    """Time each command and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    runs = parser.parse_args().runs
    emloop = str(Path(sys.executable).parent / "emloop")
    commands = {
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "emloop --help": [emloop, "--help"],
        "emloop dataset --help": [emloop, "dataset", "--help"],
        "emloop dataset info (iris)": [emloop, "dataset", "info", str(IRIS)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    print(f"start-up, {runs} interleaved runs each")
    for name, seconds in times.items():
        median_ms, min_ms = statistics.median(seconds) * 1e3, min(seconds) * 1e3
        print(f"  {name:28s} median {median_ms:6.1f} ms   min {min_ms:6.1f} ms")


if __name__ == "__main__":
    main()
