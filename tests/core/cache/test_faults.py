"""A cache is never stale, partial or garbage: damage, kills, races, bad sources and full disks."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emloop_ds.core.cache import CacheReader, CacheWriteError, CacheWriter, build_lock, is_sealed
from emloop_ds.core.cache.writer import min_free_bytes
from emloop_ds.core.errors import CacheError

from .helpers import build, mixed_batches

SCRIPT = Path(__file__).with_name("build_script.py")


def _run_script(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _write_all(writer: CacheWriter, batches: Iterator[dict[str, np.ndarray]], seal: bool = False) -> None:
    with writer:
        for batch in batches:
            writer.append(batch)
        if seal:
            writer.seal()


def _zeros(count: int) -> Iterator[dict[str, np.ndarray]]:
    for _ in range(count):
        yield {"x": np.zeros((16, 1000), np.float64)}


def test_truncated_file_is_a_cache_error_on_open(tmp_path: Path) -> None:
    build(tmp_path / "cache", mixed_batches())
    data = tmp_path / "cache" / "data.arrow"
    os.truncate(data, data.stat().st_size - 10)
    with pytest.raises(CacheError, match=r"data\.arrow has \d+ bytes.*--force"):
        CacheReader.open(tmp_path / "cache")


def test_flipped_byte_is_reported_by_verify(tmp_path: Path) -> None:
    build(tmp_path / "cache", [{"x": np.arange(1000, dtype=np.int64)}])
    data = tmp_path / "cache" / "data.arrow"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with CacheReader.open(tmp_path / "cache") as reader:
        problems = reader.verify()
    assert len(problems) == 1
    assert "data.arrow has sha256" in problems[0]
    assert "--force" in problems[0]


def test_garbage_arrow_file_is_a_cache_error_on_open(tmp_path: Path) -> None:
    build(tmp_path / "cache", mixed_batches())
    data = tmp_path / "cache" / "data.arrow"
    data.write_bytes(b"\0" * data.stat().st_size)
    with pytest.raises(CacheError, match=r"data\.arrow is damaged"):
        CacheReader.open(tmp_path / "cache")


@pytest.mark.parametrize("problem", ["missing", "garbage", "version"])
def test_bad_manifest_is_a_cache_error_on_open(tmp_path: Path, problem: str) -> None:
    build(tmp_path / "cache", mixed_batches())
    manifest = tmp_path / "cache" / "manifest.json"
    if problem == "missing":
        manifest.unlink()
    elif problem == "garbage":
        manifest.write_text("{not json")
    else:
        manifest.write_text(manifest.read_text().replace('"format_version":1', '"format_version":99'))
    with pytest.raises(CacheError, match="--force"):
        CacheReader.open(tmp_path / "cache")


@pytest.mark.parametrize("point", [1, random.Random().randint(2, 30), 39, "sealing"])
def test_build_killed_at_any_point_leaves_no_cache_and_a_rebuild_works(
    tmp_path: Path, point: int | str
) -> None:
    path = tmp_path / "cache"
    process = _run_script("build", str(path), "40")
    assert process.stdout is not None
    wanted = f"batch {point}" if isinstance(point, int) else "sealing"
    for line in process.stdout:
        if line.strip() == wanted:
            break
    process.send_signal(signal.SIGKILL)
    process.communicate()
    if is_sealed(path):  # killed after the rename of a seal already under way: complete and sound
        with CacheReader.open(path) as reader:
            assert reader.verify() == []
            assert reader.example_count == 640
    else:
        assert not path.exists()
        assert [leftover.name.split(".tmp-")[0] for leftover in tmp_path.iterdir()] == [".cache"]
    if not is_sealed(path):
        build(path, [{"x": np.ones((2, 2))}] * 3)
    assert [leftover.name for leftover in tmp_path.iterdir()] == ["cache"]  # the stale temporary is gone
    with CacheReader.open(path) as reader:
        assert reader.verify() == []


def test_two_builders_at_once_one_builds_and_the_other_waits_and_reads(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    first = _run_script("locked", str(path), "20")
    second = None
    try:
        assert first.stdout is not None
        assert first.stdin is not None
        assert first.stdout.readline().strip() == "locked"
        second = _run_script("locked", str(path), "20")
        assert second.stdout is not None
        assert second.stdout.readline().strip() == "waiting"
        first.stdin.write("go\n")
        first.stdin.flush()
        first_out, first_err = first.communicate(timeout=60)
        second_out, second_err = second.communicate(timeout=60)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert first_out.strip().endswith("built")
    assert second_out.strip() == "read 320"


def test_an_object_source_is_refused_naming_source_and_batch(tmp_path: Path) -> None:
    with CacheWriter(tmp_path / "cache", fingerprint="f", description="") as writer:
        writer.append({"x": np.arange(2), "obj": ["a", "b"]})
        with pytest.raises(CacheError, match=r"source `obj` of batch 1 mixes str with object"):
            writer.append({"x": np.arange(2), "obj": ["a", object()]})
    with (
        CacheWriter(tmp_path / "other", fingerprint="f", description="") as writer,
        pytest.raises(CacheError, match=r"source `thing` of batch 0 holds object objects"),
    ):
        writer.append({"thing": [object(), object()]})
    with (
        CacheWriter(tmp_path / "third", fingerprint="f", description="") as writer,
        pytest.raises(CacheError, match=r"source `arr` of batch 0 has dtype object"),
    ):
        writer.append({"arr": np.array([{}, {}], dtype=object)})
    assert list(tmp_path.iterdir()) == []


def test_a_changing_dtype_is_refused_naming_both(tmp_path: Path) -> None:
    with CacheWriter(tmp_path / "cache", fingerprint="f", description="") as writer:
        writer.append({"x": np.zeros(3, np.float32)})
        writer.append({"x": np.zeros(3, np.float32)})
        with pytest.raises(CacheError, match=r"source `x` changed dtype from float32 to float64 in batch 2"):
            writer.append({"x": np.zeros(3, np.float64)})
    assert list(tmp_path.iterdir()) == []


def test_unequal_source_lengths_are_refused(tmp_path: Path) -> None:
    with (
        CacheWriter(tmp_path / "cache", fingerprint="f", description="") as writer,
        pytest.raises(CacheError, match=r"batch 0: source `y` has 2 examples, another has 3"),
    ):
        writer.append({"x": np.zeros(3), "y": np.zeros(2)})


def test_disk_guard_stops_an_endless_stream_before_the_reserve(tmp_path: Path) -> None:
    total, start_free = 10_000_000, 2_000_000  # reserve: 5% of total = 500 kB

    def usage(folder: Path) -> tuple[int, int]:
        used = sum(file.stat().st_size for file in folder.iterdir())
        return total, start_free - used

    def endless() -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield {"x": np.zeros((10, 1000), np.float64)}  # 80 kB

    writer = CacheWriter(tmp_path / "cache", fingerprint="f", description="", chunk_rows=30, disk_usage=usage)
    with pytest.raises(CacheError, match=r"stopped after \d+ batches.*less than 0.00 GB free") as caught:
        _write_all(writer, endless())
    assert not isinstance(caught.value, CacheWriteError)
    assert list(tmp_path.iterdir()) == []
    assert min_free_bytes(10**12) == 1 << 30
    assert min_free_bytes(10**9) == 5 * 10**7


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """Mount a 1 MB tmpfs, or skip where mounting is not allowed."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_a_cache_write_error_and_leaves_nothing(tiny_tmpfs: Path) -> None:
    writer = CacheWriter(
        tiny_tmpfs / "cache",
        fingerprint="f",
        description="",
        chunk_rows=16,
        disk_usage=lambda _: (10**12, 10**12),
    )
    with pytest.raises(
        CacheWriteError, match=r"cannot write the cache at .*No space left on device.*free space"
    ):
        _write_all(writer, _zeros(200), seal=True)
    assert list(tiny_tmpfs.iterdir()) == []


def test_the_disk_guard_trips_on_a_real_small_file_system(tiny_tmpfs: Path) -> None:
    writer = CacheWriter(tiny_tmpfs / "cache", fingerprint="f", description="", chunk_rows=16)
    with pytest.raises(CacheError, match=r"stopped after \d+ batches"):
        _write_all(writer, _zeros(200))
    assert list(tiny_tmpfs.iterdir()) == []


def test_an_unwritable_folder_is_a_cache_write_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CacheWriteError, match="cannot write the cache"):
        CacheWriter(tmp_path / "file" / "cache", fingerprint="f", description="")


def test_a_lock_in_an_uncreatable_folder_is_a_cache_write_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CacheWriteError, match="cannot create the cache folder"):
        build_lock(tmp_path / "file" / "sub" / "cache")


def test_seal_when_another_builder_won_returns_the_existing_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    late = CacheWriter(path, fingerprint="f", description="late")
    late.append({"x": np.arange(5)})
    build(path, [{"x": np.arange(3)}])
    info = late.seal()
    assert info.examples == 3
    assert [item.name for item in tmp_path.iterdir()] == ["cache"]
