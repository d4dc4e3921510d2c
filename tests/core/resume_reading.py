"""Read a wrapper as the resume tests do: batches over epochs, saving the state after each one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emloop_ds import StreamWrapper


def read_saving_state(
    stream: StreamWrapper, total: int, key: Callable[[Any], Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Read ``total`` batches over as many epochs as it takes, then close the wrapper.

    Return ``key`` of each batch and the state taken after the last one (the fresh state if none).
    """
    out: list[Any] = []
    state = stream.state_dict()
    try:
        with stream:
            while len(out) < total:
                for batch in stream:
                    out.append(key(batch))
                    state = stream.state_dict()
                    if len(out) == total:
                        break
    finally:
        stream.close()
    return out, state
