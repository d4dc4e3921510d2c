"""Benchmark ``emloop dataset download`` against curl on the same loopback server, in the same run.

Run: python benchmarks/bench_download.py [--runs N] [--only NAME]

The server speaks HTTP/1.1 with keep-alive and sets TCP_NODELAY, as production servers do (without it,
keep-alive requests wait out delayed ACKs, 40 ms each); it sends files with sendfile, after a latency per
request where a row asks for one. Each figure is the median of N runs (default 5), emloop and its peer
alternating. The rows and their targets (issues 9 and 17):

1. ``big``: a 256 MB file with its sha256 in the config, against ``sh -c 'curl -sS -o f URL && sha256sum f'``
   (target <= 0.5x, issue 17), and against ``curl -o`` alone (reported).
2. ``latency``: 20 x 1 MB at 100 ms latency per request, ``--jobs 8``, against
   ``curl --parallel --parallel-max 8`` on the same URLs (target <= 1.3x, whole process, start-up included).
3. ``small``: 2,000 x 4 KB on one host at 2 ms latency, ``--jobs 8``, against the same curl (target <= 3x,
   issue 17) and against ``aria2c -j 8`` where it is installed (``apt-get install aria2``; target <= 1.0x).
   Both rows also run ``floor_requests.py`` as it is (a fsync per file, then its rename, and one fsync of
   the folder at the end: the durability emloop has, without records) and with ``--group`` (one
   ``syncfs`` for all files, then the renames: group durability at its cheapest, which emloop does not
   use because a ``syncfs`` waits for every other program's writes too: NOTE [no syncfs]).
4. ``noop``: a re-run with nothing to do over 1,000 and over 10,000 complete files, reading the config
   included (target <= 2 s for 10,000).

Before each timed run, the outputs of the last one are removed and ``sync`` writes out whatever any
earlier run left in memory, outside the time. Everything lives in a temporary folder that is removed at
the end. The package is byte-compiled first, as ``pip install`` does, so that runs measure downloading
rather than compiling.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import http.server
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import emloop_ds

FLOOR_SCRIPT = Path(__file__).resolve().parent / "floor_requests.py"
MB = 1024 * 1024


class _FileHandler(http.server.BaseHTTPRequestHandler):
    """Serve the server's folder with sendfile over keep-alive connections, after the server's latency."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY
    server: _FileServer

    def do_GET(self) -> None:
        if self.server.latency_s:
            time.sleep(self.server.latency_s)
        path = self.server.folder / self.path.lstrip("/")
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with path.open("rb") as file:
            offset = 0
            while offset < size:
                offset += os.sendfile(self.connection.fileno(), file.fileno(), offset, size - offset)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the benchmark's output clean."""


class _FileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 overflows when 8 jobs connect at once; nginx uses 511

    def __init__(self, folder: Path, latency_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.folder = folder
        self.latency_s = latency_s


@contextmanager
def _serving(folder: Path, latency_s: float = 0.0) -> Iterator[str]:
    server = _FileServer(folder, latency_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _write_files(folder: Path, count: int, n_bytes: int) -> list[tuple[str, str]]:
    """Write ``count`` random files; return their names and sha256 digests."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        name = f"f{index:05d}.bin"
        digest = hashlib.sha256()
        with (folder / name).open("wb") as file:
            for start in range(0, n_bytes, MB):
                chunk = os.urandom(min(MB, n_bytes - start))
                digest.update(chunk)
                file.write(chunk)
        files.append((name, digest.hexdigest()))
    return files


def _write_config(path: Path, data_root: Path, base_url: str, files: list[tuple[str, str]]) -> Path:
    lines = [
        "dataset:",
        "  class: emloop_ds.DownloadableDataset",
        f"  data_root: {data_root}",
        "  download_urls:",
    ]
    for name, digest in files:
        lines += [f"    - url: {base_url}/{name}", f"      sha256: {digest}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _curl_parallel(work: Path, base_url: str, files: list[tuple[str, str]], out: Path) -> list[str]:
    config = work / "curl.cfg"
    config.write_text(
        "".join(f'url = "{base_url}/{name}"\noutput = "{out / name}"\n' for name, _ in files),
        encoding="utf-8",
    )
    return ["curl", "--parallel", "--parallel-max", "8", "-sS", "--create-dirs", "-K", str(config)]


def _timed(command: list[str], before: Callable[[], None]) -> float:
    before()
    # Each run starts with nothing waiting to be written: otherwise a run pays for the writeback of the
    # run before it (curl's 256 MB are still in memory when it exits), and the figures split in two modes.
    os.sync()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _LAST_CPU_S.append(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime)
    return wall_s


_LAST_CPU_S: list[float] = []
"""CPU seconds (user + system) of each run timed, in order: unlike wall time, other processes waiting for
the CPU do not inflate it."""


def _remove(*paths: Path) -> Callable[[], None]:
    def remove() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    return remove


def _compare(
    runs: int, ours: tuple[list[str], Callable[[], None]], *peers: tuple[str, list[str], Callable[[], None]]
) -> tuple[list[float], dict[str, list[float]]]:
    """Run emloop and each peer ``runs`` times, alternating; return their times."""
    our_s: list[float] = []
    peer_s: dict[str, list[float]] = {name: [] for name, _, _ in peers}
    cpu_s: dict[str, list[float]] = {name: [] for name in ("emloop", *peer_s)}
    for _ in range(runs):
        for name, command, before in peers:
            peer_s[name].append(_timed(command, before))
            cpu_s[name].append(_LAST_CPU_S[-1])
        our_s.append(_timed(*ours))
        cpu_s["emloop"].append(_LAST_CPU_S[-1])
    cpu = ", ".join(f"{name} {statistics.median(values):.3f} s" for name, values in cpu_s.items())
    _PENDING_CPU_LINE[:] = [f"  (CPU of the row above, user + system, median: {cpu})"]
    return our_s, peer_s


_PENDING_CPU_LINE: list[str] = []
"""The CPU line of the last comparison, printed after its row by ``_row``."""


def _row(label: str, our_s: list[float], peer_label: str, peer_s: list[float], target: float | None) -> None:
    ours, peer = statistics.median(our_s), statistics.median(peer_s)
    verdict = (
        "report only"
        if target is None
        else f"target <= {target:g}x: {'met' if ours / peer <= target else 'NOT met'}"
    )
    print(f"  {label}")
    print(f"    emloop {ours:7.3f} s   runs: {_runs(our_s)}")
    print(f"    {peer_label} {peer:7.3f} s   runs: {_runs(peer_s)}")
    print(f"    ratio {ours / peer:5.2f}x ({verdict})")
    for line in _PENDING_CPU_LINE:
        print(line)
    _PENDING_CPU_LINE.clear()


def bench_big(work: Path, emloop: str, runs: int) -> None:
    """Row 1: 256 MB with sha256 against curl + sha256sum, and against curl alone."""
    served = work / "big-served"
    files = _write_files(served, 1, 256 * MB)
    data_root, curl_out = work / "big-root", work / "curl-big.bin"
    with _serving(served) as base_url:
        config = _write_config(work / "big.yaml", data_root, base_url, files)
        url = f"{base_url}/{files[0][0]}"
        curl_sha = ["sh", "-c", f"curl -sS -o {curl_out} {url} && sha256sum {curl_out}"]
        curl = ["curl", "-sS", "-o", str(curl_out), url]
        our_s, peer_s = _compare(
            runs,
            ([emloop, "dataset", "download", str(config)], _remove(data_root)),
            ("curl+sha256sum", curl_sha, _remove(curl_out)),
            ("curl", curl, _remove(curl_out)),
        )
    if hashlib.sha256((data_root / files[0][0]).read_bytes()).hexdigest() != files[0][1]:
        raise SystemExit("emloop downloaded wrong bytes")
    print(f"256 MB file with sha256, median of {runs}:")
    _row("against curl -o && sha256sum", our_s, "curl+sha", peer_s["curl+sha256sum"], 0.5)
    _row("against curl -o alone", our_s, "curl    ", peer_s["curl"], None)
    _remove(served, data_root, curl_out)()


def bench_many(
    work: Path, emloop: str, runs: int, name: str, count: int, n_bytes: int, latency_s: float
) -> None:
    """Rows 2 and 3: many files at a latency, --jobs 8 against curl --parallel-max 8 and aria2c -j 8."""
    served = work / f"{name}-served"
    files = _write_files(served, count, n_bytes)
    data_root, curl_out, aria_out = work / f"{name}-root", work / f"{name}-curl", work / f"{name}-aria2c"
    floor_out, group_out = work / f"{name}-floor", work / f"{name}-floor-group"
    with _serving(served, latency_s) as base_url:
        config = _write_config(work / f"{name}.yaml", data_root, base_url, files)
        urls = [f"{base_url}/{filename}" for filename, _ in files]
        peers = [
            ("curl", _curl_parallel(work, base_url, files, curl_out), _remove(curl_out)),
            (
                "python+requests floor",
                [sys.executable, str(FLOOR_SCRIPT), str(floor_out), *urls],
                _remove(floor_out),
            ),
            (
                "python+requests floor, group durability",
                [sys.executable, str(FLOOR_SCRIPT), "--group", str(group_out), *urls],
                _remove(group_out),
            ),
        ]
        if shutil.which("aria2c") is not None:
            peers.append(("aria2c", _aria2c(work, urls, aria_out), _remove(aria_out)))
        our_s, peer_s = _compare(
            runs, ([emloop, "dataset", "download", str(config), "--jobs", "8"], _remove(data_root)), *peers
        )
    size = f"{n_bytes // MB} MB" if n_bytes >= MB else f"{n_bytes // 1024} KB"
    print(f"{count:,} x {size} at {latency_s * 1000:g} ms latency per request, --jobs 8, median of {runs}:")
    small = n_bytes < MB
    _row("against curl --parallel --parallel-max 8", our_s, "curl  ", peer_s["curl"], 3.0 if small else 1.3)
    if "aria2c" in peer_s:
        _row("against aria2c -j 8 (a comparison)", our_s, "aria2c", peer_s["aria2c"], 1.0 if small else None)
    else:
        print("  aria2c: not installed (apt-get install aria2), no comparison")
    curl_s = statistics.median(peer_s["curl"])
    for floor in ("python+requests floor", "python+requests floor, group durability"):
        floor_s = statistics.median(peer_s[floor])
        print(
            f"  {floor} ({FLOOR_SCRIPT.name}): {floor_s:.3f} s = {floor_s / curl_s:.2f}x curl, emloop at "
            f"{statistics.median(our_s) / floor_s:.2f}x it   runs: {_runs(peer_s[floor])}"
        )
    _remove(served, data_root, curl_out, aria_out, floor_out, group_out)()


def _aria2c(work: Path, urls: list[str], out: Path) -> list[str]:
    listing = work / "aria2c-urls.txt"
    listing.write_text("".join(f"{url}\n" for url in urls), encoding="utf-8")
    return [
        "aria2c", "-j", "8", "-i", str(listing), "-d", str(out), "--quiet", "--allow-overwrite=true",
        "--auto-file-renaming=false", "--file-allocation=none",
    ]  # fmt: skip


def bench_noop(work: Path, emloop: str, runs: int) -> None:
    """Row 4: a re-run with nothing to do, over 1,000 and 10,000 complete files."""
    from emloop_ds.core.download import NoProgress, fetch_dataset

    print(f"no-op re-run of complete files (config with url + sha256 per file), median of {runs}:")
    for count in (1_000, 10_000):
        served = work / f"noop-{count}-served"
        files = _write_files(served, count, 4096)
        data_root = work / f"noop-{count}-root"
        with _serving(served) as base_url:
            config = _write_config(work / f"noop-{count}.yaml", data_root, base_url, files)
            entries = [{"url": f"{base_url}/{name}", "sha256": digest} for name, digest in files]
            failed = [r for r in fetch_dataset(data_root, entries, jobs=8, progress=NoProgress()) if r.error]
            if failed:
                raise SystemExit(f"setting up the no-op run failed: {failed[0].error}")
            times = [_timed([emloop, "dataset", "download", str(config)], lambda: None) for _ in range(runs)]
            cpu = _LAST_CPU_S[-runs:]
        verdict = (
            f"target <= 2 s: {'met' if statistics.median(times) <= 2 else 'NOT met'}"
            if count == 10_000
            else "report"
        )
        print(
            f"  {count:6,} files  {statistics.median(times):6.3f} s   runs: {_runs(times)}   ({verdict}); "
            f"CPU {statistics.median(cpu):.3f} s (unaffected by other processes waiting for the CPU)"
        )
        _remove(served, data_root)()


def _runs(values: list[float]) -> str:
    return " ".join(f"{value:.3f}" for value in values)


def main() -> None:
    """Run the benchmarks in a temporary folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--only", choices=("big", "latency", "small", "noop"), help="run one row only")
    args = parser.parse_args()
    emloop = str(Path(sys.executable).with_name("emloop"))
    if not Path(emloop).exists() or shutil.which("curl") is None or shutil.which("sha256sum") is None:
        raise SystemExit(
            "needs the `emloop` command next to this Python (pip install -e .), curl and sha256sum"
        )
    compileall.compile_dir(Path(emloop_ds.__file__).parent, quiet=1)
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        "loopback HTTP/1.1 keep-alive server, TCP_NODELAY"
    )
    with tempfile.TemporaryDirectory(prefix="emloop-bench-") as folder:
        work = Path(folder)
        if args.only in (None, "big"):
            bench_big(work, emloop, args.runs)
        if args.only in (None, "latency"):
            bench_many(work, emloop, args.runs, "latency", 20, MB, 0.1)
        if args.only in (None, "small"):
            bench_many(work, emloop, args.runs, "small", 2000, 4096, 0.002)
        if args.only in (None, "noop"):
            bench_noop(work, emloop, args.runs)


if __name__ == "__main__":
    main()
