"""Measure ``emloop dataset info`` on many large batches: wall time and peak memory, with and without --stats.

Run with ``python benchmarks/bench_info.py [BATCHES]`` (default 1000). Every variant runs in a child process
whose peak RSS is read with ``os.wait4``; each batch is a fresh float32 array of 8x3x224x224 (4.8 MB) with
NaN and infinities in it, plus 8 integer labels. Side by side in the same run: reading the stream alone
(what the dataset costs), and a hand-written numpy loop finding the same range and NaN/inf counts (the
least work ``info`` can do). The peak memory should not grow with BATCHES. CPU seconds (user + system) are
steadier than wall seconds on a shared machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = """
import numpy as np

from emloop_ds import BaseDataset

SHAPE = (8, 3, 224, 224)


class Big(BaseDataset):
    def _configure_dataset(self, output_dir, batches=1000):
        self.batches = batches

    def train_stream(self):
        for n in range(self.batches):
            images = np.full(SHAPE, n % 7, dtype=np.float32)
            images[0, 0, 0, : n % 5] = np.nan
            images[1, 0, 0, 0] = np.inf
            yield {"images": images, "labels": np.arange(8) % 3}
"""

STREAM_ONLY = """
import sys
from big_dataset import Big
for batch in Big("batches: " + sys.argv[1]).train_stream():
    pass
"""

NUMPY_LOOP = """
import sys
import numpy as np
from big_dataset import Big
low, high, nan = np.inf, -np.inf, 0
for batch in Big("batches: " + sys.argv[1]).train_stream():
    images = batch["images"]
    finite = np.isfinite(images)
    nan += int(np.count_nonzero(np.isnan(images)))
    values = images[finite]
    low, high = min(low, values.min()), max(high, values.max())
"""


def run(command: list[str], folder: Path) -> tuple[float, float, float]:
    """Run ``command`` in ``folder``; return its wall seconds, CPU seconds and peak RSS in MB."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.DEVNULL, env=os.environ | {"PYTHONPATH": "."}
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {process.returncode}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    emloop = str(Path(sys.executable).parent / "emloop")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "big_dataset.py").write_text(DATASET, encoding="utf-8")
        (folder / "config.yaml").write_text("dataset:\n  class: big_dataset.Big\n", encoding="utf-8")
        variants = {
            "read the stream only": [sys.executable, "-c", STREAM_ONLY, str(batches)],
            "numpy loop: range + NaN count": [sys.executable, "-c", NUMPY_LOOP, str(batches)],
            "emloop dataset info (10 batches)": [
                emloop,
                "dataset",
                "info",
                "config.yaml",
                "--batches",
                "10",
                "--allow-broken",
                f"dataset.batches={batches}",
            ],
            f"emloop dataset info --batches {batches}": [
                emloop,
                "dataset",
                "info",
                "config.yaml",
                "--batches",
                str(batches),
                f"dataset.batches={batches}",
            ],
            f"emloop dataset info --batches {batches} --stats": [
                emloop,
                "dataset",
                "info",
                "config.yaml",
                "--batches",
                str(batches),
                "--stats",
                f"dataset.batches={batches}",
            ],
        }
        print(f"{batches} batches of 4.8 MB ({batches * 4.8 / 1000:.1f} GB per pass)")
        print(f"{'variant':<48} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
        for label, command in variants.items():
            seconds, cpu_s, peak_mb = run(command, folder)
            print(f"{label:<48} {seconds:>8.2f} {cpu_s:>8.2f} {peak_mb:>12.0f}")


if __name__ == "__main__":
    main()
