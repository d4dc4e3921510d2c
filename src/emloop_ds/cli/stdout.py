"""Write results to stdout in a form its encoding can carry; plain aligned tables where it is no terminal.

Nothing here imports rich: a download whose output goes to a pipe, a file or a CI log never loads it.
"""

from __future__ import annotations

import codecs
import sys
import unicodedata
from collections.abc import Collection, Sequence
from typing import TextIO

__all__ = ["SPARK_BLOCKS", "ascii_safe_stdout", "cell_width", "is_terminal", "print_plain_table"]

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


def cell_width(text: str) -> int:
    """Return how many terminal cells ``text`` takes: two for a wide character, none for a combining one."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def _ascii_lookalikes(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    unencodable = error.object[error.start : error.end]
    return "".join(_ASCII_LOOKALIKES.get(char) or "?" * cell_width(char) for char in unencodable), error.end


codecs.register_error(_ASCII_ERRORS, _ascii_lookalikes)


def ascii_safe_stdout() -> TextIO:
    """Return ``sys.stdout``, set to write ASCII look-alikes where it cannot encode Unicode."""
    stream = sys.stdout
    reconfigure = getattr(stream, "reconfigure", None)
    if not _encodes_unicode(getattr(stream, "encoding", None) or "utf-8") and reconfigure is not None:
        reconfigure(errors=_ASCII_ERRORS)  # NOTE [ASCII output]
    return stream


def _encodes_unicode(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        return False


def is_terminal() -> bool:
    """Tell whether stdout is a terminal, which gets rich tables, rather than a pipe, a file or a log."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty is not None and isatty())


def print_plain_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right_aligned: Collection[int] = ()
) -> None:
    """Print a header line and ``rows`` on stdout, columns aligned with two spaces; no box, colour or wrap.

    ``right_aligned`` holds the indexes of the columns (of figures) aligned to the right. A long cell makes
    its column wide rather than wrapping: a log wants each row on one line.
    """
    widths = [max(cell_width(line[column]) for line in (header, *rows)) for column in range(len(header))]
    stream = ascii_safe_stdout()
    for line in (header, *rows):
        cells = []
        for column, (cell, width) in enumerate(zip(line, widths, strict=True)):
            padding = " " * (width - cell_width(cell))
            cells.append(padding + cell if column in right_aligned else cell + padding)
        stream.write("  ".join(cells).rstrip() + "\n")
    stream.flush()
