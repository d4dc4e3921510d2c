"""Carry an exception across a process boundary: pickled with its formatted traceback, or as a stand-in."""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass

__all__ = ["PackedException", "RemoteExceptionStandIn", "pack_exception", "unpack_exception"]


class RemoteExceptionStandIn(Exception):
    """Stand for an exception of another process that could not be pickled or unpickled.

    It names the original type and message; the original traceback is in ``remote_traceback``.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str, reason: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.remote_traceback = remote_traceback
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PackedException:
    """An exception ready to cross: its pickle (``None`` if it had none), type, message and traceback."""

    pickled: bytes | None
    type_name: str
    message: str
    traceback: str
    pickle_error: str = ""


def pack_exception(exc: BaseException) -> PackedException:
    """Pickle ``exc`` with its type, message and formatted traceback, which survive even if it cannot."""
    kind = type(exc)
    type_name = (
        kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    )
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the error
        message = "<unprintable message>"
    formatted = "".join(traceback.format_exception(exc))
    try:
        pickled: bytes | None = pickle.dumps(exc)
        pickle_error = ""
    except Exception as pickling:
        pickled, pickle_error = None, f"it cannot be pickled: {type(pickling).__name__}: {pickling}"
    return PackedException(pickled, type_name, message, formatted, pickle_error)


def unpack_exception(packed: PackedException, where: str) -> BaseException:
    """Rebuild the exception, noting the traceback from ``where``; a stand-in if it cannot be rebuilt."""
    reason = packed.pickle_error
    exc: BaseException | None = None
    if packed.pickled is not None:
        try:
            loaded = pickle.loads(packed.pickled)
        except Exception as unpickling:
            reason = f"it cannot be unpickled: {type(unpickling).__name__}: {unpickling}"
        else:
            if isinstance(loaded, BaseException):
                exc = loaded
            else:
                reason = f"it unpickled as a {type(loaded).__name__}"
    if exc is None:
        exc = RemoteExceptionStandIn(packed.type_name, packed.message, packed.traceback, reason)
        exc.add_note(f"The original {packed.type_name} did not cross from {where}: {reason}.")
    exc.add_note(f"Traceback in {where}:\n{packed.traceback.rstrip()}")
    return exc
