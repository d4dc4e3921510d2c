"""Build the digits example's download: an archive holding one PNG image per example, and its labels.

Run ``python examples/digits/make_mirror.py [FOLDER]``. It reads ``digits.csv.gz`` beside it (1,797 rows of
an 8×8 image, values 0..16, then the label) and writes ``FOLDER/digits-png.tar.gz`` (default:
``/tmp/emloop-ds-digits-mirror``, the mirror that ``config.yaml`` downloads from). The archive holds
``digits/images/00000.png`` ... (8-bit grayscale, 8×8) and ``digits/labels.csv``; it is the same bytes
on every run: fixed member order, times and owners.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_MIRROR = Path("/tmp/emloop-ds-digits-mirror")
ARCHIVE = "digits-png.tar.gz"


def read_rows(source: Path = HERE / "digits.csv.gz") -> tuple[np.ndarray, np.ndarray]:
    """Return the images (N×8×8 uint8, scaled to 0..255) and labels (N, int64) of the CSV."""
    with gzip.open(source, "rt", encoding="ascii") as file:
        rows = np.array([[int(value) for value in row] for row in csv.reader(file)], dtype=np.int64)
    images = (rows[:, :64].reshape(-1, 8, 8) * 255 // 16).astype(np.uint8)
    return images, rows[:, 64]


def build_archive(folder: Path) -> Path:
    """Write the archive into ``folder`` and return its path."""
    images, labels = read_rows()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ARCHIVE
    partial = target.with_suffix(".partial")
    with (
        open(partial, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as archive,
    ):
        lines = io.StringIO()
        for number, (image, label) in enumerate(zip(images, labels, strict=True)):
            png = io.BytesIO()
            Image.fromarray(image, mode="L").save(png, format="PNG")
            _add(archive, f"digits/images/{number:05d}.png", png.getvalue())
            lines.write(f"{number:05d}.png,{label}\n")
        _add(archive, "digits/labels.csv", lines.getvalue().encode("ascii"))
    partial.replace(target)
    return target


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mode = 0o644
    archive.addfile(member, io.BytesIO(data))


if __name__ == "__main__":
    written = build_archive(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MIRROR)
    print(f"wrote {written}; download it with: emloop dataset download examples/digits", end="")
    if written.parent != DEFAULT_MIRROR:
        print(f" dataset.url_root=file://{written.parent}/", end="")
    print()
