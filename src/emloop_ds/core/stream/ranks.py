"""Read a data-parallel job's rank and world size from the environment that torchrun sets."""

from __future__ import annotations

import os
from collections.abc import Mapping

from emloop_ds.core.errors import ConfigError

__all__ = ["ranks_from_env"]


def ranks_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Return ``(rank, world_size)`` from ``RANK`` and ``WORLD_SIZE``, or ``(0, 1)`` when both are unset.

    Nothing in emloop-ds reads these variables implicitly: pass the result to ``StreamWrapper``.

    Raises:
        ConfigError: if only one of the two is set, either is not a whole number, or the rank is not in
            ``0 <= rank < world_size``.
    """
    environ = os.environ if environ is None else environ
    rank_text, world_text = environ.get("RANK"), environ.get("WORLD_SIZE")
    if rank_text is None and world_text is None:
        return 0, 1
    if rank_text is None or world_text is None:
        missing, present = ("RANK", "WORLD_SIZE") if rank_text is None else ("WORLD_SIZE", "RANK")
        raise ConfigError(
            f"{present} is set but {missing} is not; set both (torchrun does) or neither for a single process"
        )
    rank, world_size = _whole_number("RANK", rank_text), _whole_number("WORLD_SIZE", world_text)
    if not 0 <= rank < world_size:
        raise ConfigError(
            f"RANK={rank} is outside 0 <= RANK < WORLD_SIZE={world_size}; check the launcher's settings"
        )
    return rank, world_size


def _whole_number(name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError(
            f"{name}={text!r} is not a whole number; set it as torchrun does, e.g. {name}=0"
        ) from None
