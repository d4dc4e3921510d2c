"""Make the rich console on stdout, which degrades to ASCII where the terminal cannot encode Unicode."""

from __future__ import annotations

import codecs
import sys
from typing import Any

from rich.cells import cell_len
from rich.console import Console

__all__ = ["SPARK_BLOCKS", "stdout_console"]

# NOTE [ASCII output]
# A terminal that cannot encode Unicode (PYTHONIOENCODING=ascii, a C locale, a latin-1 pipe) gets ASCII,
# never a UnicodeEncodeError. Rich already draws ASCII boxes when stdout's encoding is not UTF; every other
# character stdout cannot encode goes through the error handler below, whatever handler stdout had (in a C
# locale without UTF-8 mode it is "surrogateescape", which fails on "–" as "strict" does): our own symbols
# (dashes, sparkline blocks, rich's ellipsis) get an ASCII look-alike, anything else (such as a source's
# name) one "?" per terminal cell, so that table columns stay aligned. JSON needs none of this: json.dumps
# escapes to ASCII. Nor does stderr: Python gives it "backslashreplace" whatever the locale.
_ASCII_ERRORS = "emloop_ds.ascii"
_ASCII_LOOKALIKES = {"–": "-", "—": "-", "…": ".", "·": ".", "×": "x", "±": "+"}
SPARK_BLOCKS = " ▁▂▃▄▅▆▇█"  # a sparkline's levels: empty, then eighths
_ASCII_LOOKALIKES.update(zip(SPARK_BLOCKS[1:], ".:-=+*%#", strict=True))


def _ascii_lookalikes(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    unencodable = error.object[error.start : error.end]
    return "".join(_ASCII_LOOKALIKES.get(char) or "?" * cell_len(char) for char in unencodable), error.end


codecs.register_error(_ASCII_ERRORS, _ascii_lookalikes)


def stdout_console(**options: Any) -> Console:
    """Return a rich console on stdout that degrades to ASCII where stdout cannot encode Unicode."""
    stream = sys.stdout
    reconfigure = getattr(stream, "reconfigure", None)
    if not _encodes_unicode(getattr(stream, "encoding", None) or "utf-8") and reconfigure is not None:
        reconfigure(errors=_ASCII_ERRORS)  # NOTE [ASCII output]
    return Console(file=stream, **options)


def _encodes_unicode(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        return False
