"""Write diagnostics (errors, notes) to stderr in a form that stderr's encoding can carry."""

from __future__ import annotations

import sys

__all__ = ["echo_stderr"]


def echo_stderr(message: str) -> None:
    """Write ``message`` and a newline to stderr, with ``\\xe9``-style escapes for what it cannot encode.

    Click's own ``echo`` would write UTF-8 to a stderr declared ASCII (PYTHONIOENCODING=ascii, a C locale);
    escapes keep a path or a dataset's message exact and the stream ASCII (NOTE [ASCII output], cli/stdout).
    """
    stream = sys.stderr
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        message.encode(encoding)
    except UnicodeEncodeError:
        message = message.encode(encoding, errors="backslashreplace").decode(encoding)
    except LookupError:  # an encoding Python does not know: leave it to the stream
        pass
    stream.write(message + "\n")
    stream.flush()
