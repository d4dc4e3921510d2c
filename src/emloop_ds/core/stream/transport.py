"""Move batches from a worker process to the reader through reused shared-memory slots.

NOTE [slot transport]
A batch is pickled; every numpy array of a fixed-size dtype of at least ``INLINE_BYTES`` leaves the
pickle and is copied, once, into a *slot* of the worker: a shared-memory segment that the worker made,
faulted in and keeps for reuse. The reader maps each slot once and unpickles the batch into arrays that
are views of the slot, so it copies nothing.
- Segments are anonymous (``memfd_create``) and travel as file descriptors over the worker's socket, so
  no name ever exists in ``/dev/shm``: nothing can be left behind, not even after SIGKILL of either side.
  A segment's memory is freed once neither process maps it.
- All the arrays of one batch share one slot. The reader hands out views of a per-batch *lease* array
  over the slot; a weak reference to the lease tells it when nothing refers to the batch's arrays any
  more, and the slot's number is then queued in ``SlotReader.released`` for the engine to send back.
- The worker never waits for a slot: with no free slot large enough it makes a new one, so a reader that
  keeps arrays makes the pool grow. It keeps at most ``spare_slots`` free slots and retires the rest
  (and free slots too small for the current batches); the reader unmaps a retired slot when told.
- Object arrays, small arrays and everything else stay in the pickle.
- Each mapped slot holds a file descriptor on each side (Python's mmap keeps one), so a reader that keeps
  the arrays of thousands of batches could reach the soft limit on open files: before making or receiving
  a slot, each side raises its soft limit to the hard one when little room is left.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import pickle
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from math import prod
from typing import Any

import numpy as np

__all__ = ["INLINE_BYTES", "EncodedBatch", "NewSlot", "SlotReader", "SlotWriter", "make_room_for_files"]

INLINE_BYTES = 32 * 1024
"""Arrays smaller than this stay in the pickle: a slot costs more than copying them."""

_ALIGN_BYTES = 64
_PAGE_BYTES = mmap.PAGESIZE
_HAS_MEMFD = hasattr(os, "memfd_create")  # Linux; elsewhere every array travels in the pickle


@dataclass(frozen=True, slots=True)
class NewSlot:
    """A slot the reader has not seen yet: its number, size and a file descriptor of its segment."""

    slot_id: int
    nbytes: int
    fd: int


@dataclass(slots=True)
class EncodedBatch:
    """A batch ready to send: its pickle, the slot holding its arrays (-1: none) and slot news."""

    payload: bytes
    slot_id: int
    new_slots: list[NewSlot] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)


def _shared_array(offset: int, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Stand for an array in a slot; only ``SlotReader`` can rebuild it."""
    raise pickle.UnpicklingError("a batch with arrays in shared memory can only be read by its SlotReader")


def _is_shared(value: object) -> bool:
    """Return whether ``value`` travels through a slot rather than the pickle (NOTE [slot transport])."""
    kind = type(value)
    if (kind is not np.ndarray and kind is not np.memmap) or not _HAS_MEMFD:
        return False
    array: np.ndarray[Any, Any] = value  # type: ignore[assignment]
    return array.nbytes >= INLINE_BYTES and not array.dtype.hasobject


class _SlotPickler(pickle.Pickler):
    """Pickle a batch, laying out its large arrays one after another for a slot instead of pickling them.

    One pickler serves every batch of a worker (making one costs more than pickling a small batch).
    """

    def __init__(self) -> None:
        self.file = io.BytesIO()
        super().__init__(self.file, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays: list[tuple[int, np.ndarray[Any, Any]]] = []
        self.nbytes = 0

    def pickle(self, batch: Any) -> bytes:
        """Return the pickle of ``batch``, leaving its large arrays and their total size in the attributes."""
        self.file.seek(0)
        self.file.truncate()
        self.clear_memo()
        self.arrays = []
        self.nbytes = 0
        try:
            self.dump(batch)
        finally:
            self.clear_memo()  # the memo must not keep the batch alive
        return self.file.getvalue()

    def reducer_override(self, obj: Any) -> Any:
        if not _is_shared(obj):
            return NotImplemented
        offset = self.nbytes
        self.arrays.append((offset, obj))
        self.nbytes = -(-(offset + obj.nbytes) // _ALIGN_BYTES) * _ALIGN_BYTES
        return _shared_array, (offset, obj.dtype, obj.shape)


class _WriterSlot:
    """A segment the worker made, mapped and faulted in."""

    __slots__ = ("bytes", "memory", "nbytes", "slot_id")

    def __init__(self, slot_id: int, nbytes: int, memory: mmap.mmap) -> None:
        self.slot_id = slot_id
        self.nbytes = nbytes
        self.memory = memory
        self.bytes: np.ndarray[Any, np.dtype[np.uint8]] | None = np.frombuffer(memory, np.uint8)

    def close(self) -> None:
        self.bytes = None  # the view must go before the mapping can close
        self.memory.close()


class SlotWriter:
    """Encode batches in a worker process, copying their large arrays into reused slots.

    The caller sends each ``NewSlot``'s descriptor to the reader before the batch, then closes it.
    """

    def __init__(self, spare_slots: int = 4) -> None:
        self._spare_slots = spare_slots
        self._free: list[_WriterSlot] = []
        self._in_use: dict[int, _WriterSlot] = {}
        self._retired: list[int] = []
        self._next_id = 0
        self._pickler = _SlotPickler()

    def encode(self, batch: Any) -> EncodedBatch:
        """Pickle ``batch`` with its large arrays copied into a slot (NOTE [slot transport])."""
        pickler = self._pickler
        payload = pickler.pickle(batch)
        if not pickler.arrays:
            return EncodedBatch(payload, -1, [], self._take_retired())
        new_slots: list[NewSlot] = []
        slot = self._slot_for(pickler.nbytes, new_slots)
        assert slot.bytes is not None
        for offset, array in pickler.arrays:
            target = slot.bytes[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
            np.copyto(target, array, casting="no")
        pickler.arrays = []  # the batch's arrays must not outlive it here
        return EncodedBatch(payload, slot.slot_id, new_slots, self._take_retired())

    def release(self, slot_ids: list[int]) -> None:
        """Take back slots whose arrays the reader no longer refers to; retire those beyond the spares."""
        for slot_id in slot_ids:
            slot = self._in_use.pop(slot_id, None)
            if slot is not None:
                self._free.append(slot)
        while len(self._free) > self._spare_slots:
            self._retire(self._free.pop(0))

    def close(self) -> None:
        """Unmap every slot this worker made."""
        for slot in [*self._free, *self._in_use.values()]:
            slot.close()
        self._free.clear()
        self._in_use.clear()

    def _slot_for(self, nbytes: int, new_slots: list[NewSlot]) -> _WriterSlot:
        fitting = [slot for slot in self._free if slot.nbytes >= nbytes]
        if fitting:
            slot = min(fitting, key=lambda candidate: candidate.nbytes)
            self._free.remove(slot)
        else:
            for small in self._free:
                self._retire(small)
            self._free.clear()
            slot, fd = self._make_slot(nbytes)
            new_slots.append(NewSlot(slot.slot_id, slot.nbytes, fd))
        self._in_use[slot.slot_id] = slot
        return slot

    def _make_slot(self, nbytes: int) -> tuple[_WriterSlot, int]:
        """Make a segment with room to spare for batches a little larger, and fault its pages in now."""
        size = -(-(nbytes + nbytes // 8) // _PAGE_BYTES) * _PAGE_BYTES
        make_room_for_files()
        fd = os.memfd_create("emloop-ds-slot", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            memory = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        slot = _WriterSlot(self._next_id, size, memory)
        self._next_id += 1
        assert slot.bytes is not None
        slot.bytes[::_PAGE_BYTES] = 0  # fault every page in once, not on each batch
        return slot, fd

    def _retire(self, slot: _WriterSlot) -> None:
        slot.close()
        self._retired.append(slot.slot_id)

    def _take_retired(self) -> list[int]:
        retired, self._retired = self._retired, []
        return retired


def _view(lease: np.ndarray[Any, Any], offset: int, dtype: np.dtype[Any], shape: tuple[int, ...]) -> Any:
    return np.frombuffer(lease, dtype=dtype, count=prod(shape), offset=offset).reshape(shape)


class _SlotUnpickler(pickle.Unpickler):
    """Unpickle a batch whose large arrays are views of ``lease``."""

    def __init__(self, payload: bytes, lease: np.ndarray[Any, Any]) -> None:
        super().__init__(io.BytesIO(payload))
        # A partial, not a bound method: the memo must not refer back to the unpickler, or the lease
        # would live until the cycle collector runs instead of until its arrays are dropped.
        self._rebuild = partial(_view, lease)

    def find_class(self, module: str, name: str) -> Any:
        if name == "_shared_array" and module == __name__:
            return self._rebuild
        return super().find_class(module, name)


class SlotReader:
    """Decode a worker's batches into views of its slots, and collect the slots the reader let go."""

    def __init__(self) -> None:
        self._slots: dict[int, mmap.mmap] = {}
        self._leases: dict[int, weakref.ref[np.ndarray[Any, Any]]] = {}
        self.released: deque[int] = deque()

    def add_slot(self, slot_id: int, nbytes: int, fd: int) -> None:
        """Map a new slot of the worker, taking ownership of ``fd`` (closed here)."""
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        try:
            self._slots[slot_id] = mmap.mmap(fd, nbytes, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)

    def decode(self, payload: bytes, slot_id: int, retired: list[int]) -> Any:
        """Return the batch of ``payload``, with the arrays held in slot ``slot_id`` as views of it."""
        for retired_id in retired:
            self._unmap(retired_id)
        if slot_id < 0:
            return pickle.loads(payload)
        lease = np.frombuffer(self._slots[slot_id], np.uint8)
        self._leases[slot_id] = weakref.ref(lease, _release_callback(self.released, slot_id))
        return _SlotUnpickler(payload, lease).load()

    def take_released(self) -> list[int]:
        """Return and forget the slots released since the last call."""
        released = self.released
        return [released.popleft() for _ in range(len(released))]

    def close(self) -> None:
        """Drop every mapping; one still referred to by the reader's arrays lives on until they go."""
        for slot_id in list(self._slots):
            self._unmap(slot_id)
        self._leases.clear()

    def _unmap(self, slot_id: int) -> None:
        memory = self._slots.pop(slot_id, None)
        if memory is not None:
            with contextlib.suppress(BufferError):  # arrays refer to it: it goes with the last of them
                memory.close()


def _release_callback(released: deque[int], slot_id: int) -> Callable[[object], None]:
    """Return a weak-reference callback that queues ``slot_id``; it refers to nothing else."""

    def release(_reference: object) -> None:
        released.append(slot_id)

    return release


def make_room_for_files(spare: int = 32) -> None:
    """Raise this process's soft limit on open files to the hard one if fewer than ``spare`` are left.

    Called before a slot's descriptor is made or received: a descriptor arriving past the limit is
    silently dropped by the kernel, so the room must be there first.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:
        return  # no /proc: leave the limit alone
    if open_now + spare > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
