"""Compute and compare file checksums; hash streamed bytes on a background thread."""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALGORITHMS", "CHUNK_BYTES", "DEFAULT_ALGORITHM", "Checksum", "StreamingHasher", "hash_file"]

ALGORITHMS = {"sha256": 64, "md5": 32}
"""The supported algorithms and the number of hex digits of their digests."""

DEFAULT_ALGORITHM = "sha256"
"""Hashed when the config gives no checksum, so the result can be pinned in the config."""

CHUNK_BYTES = 1 << 19
"""Bytes per read: big enough that per-chunk Python work is negligible next to copying and hashing, small
enough that the buffers in flight stay in the CPU cache between being received and being hashed (256 MB
on loopback with sha256, in-process: 1 MiB chunks ~245 ms, 512 KiB ~228 ms, 256 KiB ~230 ms)."""


@dataclass(frozen=True)
class Checksum:
    """A digest in lowercase hex together with the algorithm that made it."""

    algorithm: str
    digest: str

    def __str__(self) -> str:
        """Return ``algorithm digest``, as messages show it."""
        return f"{self.algorithm} {self.digest}"


def hash_file(path: Path, algorithm: str) -> Checksum:
    """Hash a whole file (used only to adopt a file that is already in place, never after a download)."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, algorithm).hexdigest()
    return Checksum(algorithm, digest)


class StreamingHasher:
    """Hash buffers on a background thread, so that hashing overlaps receiving and writing.

    The caller takes a buffer, fills it, writes it out and feeds it; the thread hashes it (hashlib releases
    the GIL) and hands it back for reuse. A fixed pool of buffers bounds memory and applies back-pressure.
    The first buffer is hashed at once and the thread starts with the second, so a file of one chunk (most
    files of a many-file dataset) costs no thread. Use it as a context manager so the thread always ends.
    """

    def __init__(self, algorithm: str, buffer_bytes: int = CHUNK_BYTES, buffer_count: int = 4) -> None:
        """Prepare to hash; up to ``buffer_count`` buffers of ``buffer_bytes`` are made as needed."""
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._buffer_bytes = buffer_bytes
        self._buffers_left = buffer_count
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._is_first = True
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StreamingHasher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def take(self, expected_bytes: int | None = None) -> bytearray:
        """Return a free buffer to fill, waiting while all of them are being hashed.

        A new buffer holds ``expected_bytes`` plus one byte (to see the end in one read) if that is less
        than the usual size: a 4 KB file then does not allocate and free half a megabyte.
        """
        try:
            return self._free.get_nowait()
        except queue.Empty:
            if self._buffers_left == 0:
                return self._free.get()
        self._buffers_left -= 1  # small files never need the whole pool
        if expected_bytes is not None and expected_bytes < self._buffer_bytes:
            return bytearray(max(expected_bytes + 1, 1024))
        return bytearray(self._buffer_bytes)

    def give_back(self, buffer: bytearray) -> None:
        """Return a buffer that holds nothing to hash."""
        self._free.put(buffer)

    def feed(self, buffer: bytearray, n_bytes: int) -> None:
        """Hash the first ``n_bytes`` of ``buffer``, then return it to the pool."""
        if self._is_first:
            self._is_first = False
            self._hash.update(memoryview(buffer)[:n_bytes])
            self._free.put(buffer)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="emloop-ds-hash", daemon=True)
            self._thread.start()
        self._work.put((buffer, n_bytes))

    def finish(self) -> Checksum:
        """Wait for every buffer fed and return the checksum.

        Raises:
            RuntimeError: if hashing failed, with the original error as its cause.
        """
        self.close()
        if self._error is not None:
            raise RuntimeError(f"hashing with {self._algorithm} failed") from self._error
        return Checksum(self._algorithm, self._hash.hexdigest())

    def close(self) -> None:
        """Stop the thread after the buffers fed so far."""
        if self._thread is not None and self._thread.is_alive():
            self._work.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            buffer, n_bytes = item
            try:
                if self._error is None:
                    self._hash.update(memoryview(buffer)[:n_bytes])
            except BaseException as exc:  # handed to the consumer by finish()
                self._error = exc
            finally:
                self._free.put(buffer)
