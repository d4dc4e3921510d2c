"""Declare the resume and rank options of ``emloop dataset stream``, and handle SIGTERM like Ctrl-C there."""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from emloop_ds.core.errors import TerminatedError

if TYPE_CHECKING:
    from emloop_ds.core.stream.state_file import StateFile

__all__ = ["open_state_file", "progress_done", "sigterm_as_interrupt", "state_options"]

F = TypeVar("F", bound=Callable[..., Any])


def state_options(function: F) -> F:
    """Add ``--state``, ``--state-every``, ``--rank`` and ``--world-size``."""
    options = (
        click.option(
            "--state",
            "state_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            metavar="FILE",
            help="Resume from FILE if it exists; write the stream's state to it (atomically) at the end, "
            "at Ctrl-C and at SIGTERM. --epochs then counts the whole run, the resumed part included.",
        ),
        click.option(
            "--state-every",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="With --state, also write the state every N batches, so that a kill loses at most N.",
        ),
        click.option(
            "--rank",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="This reader's rank in a data-parallel job of --world-size readers (e.g. torchrun's RANK).",
        ),
        click.option(
            "--world-size",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Readers of the data-parallel job, each reading a disjoint part of the stream.",
        ),
    )
    for option in reversed(options):
        function = option(function)
    return function


def open_state_file(
    state_path: Path | None, state_every: int | None, rank: int, world_size: int
) -> StateFile | None:
    """Check the options and read the state file, if one is given; return it, or None without --state.

    Raises:
        click.UsageError: for --state-every without --state, or a rank not below the world size.
        ConfigError: if the file exists but holds no stream state.
    """
    if rank >= world_size:
        raise click.UsageError(f"--rank {rank} must be below --world-size {world_size}: ranks count from 0")
    if state_path is None:
        if state_every is not None:
            raise click.UsageError("--state-every N writes the state file: add --state FILE")
        return None
    from emloop_ds.core.stream.state_file import StateFile

    state_file = StateFile(state_path, state_every)
    state_file.read()
    return state_file


def progress_done(state_file: StateFile | None, epoch_size: int | None) -> int:
    """Return the batches a resumed run of fixed-size epochs had read before, for the progress bar."""
    if state_file is None or state_file.resumed_at is None or epoch_size is None:
        return 0
    return state_file.resumed_at["epoch"] * epoch_size + state_file.resumed_at["batch"]


def sigterm_as_interrupt(command: F) -> F:
    """Run ``command`` raising ``TerminatedError``, a KeyboardInterrupt, on SIGTERM; ignore a second one.

    So SIGTERM, which SLURM and Kubernetes send before a kill, stops the read as Ctrl-C does: the summary
    and the state are written and the workers stopped, undisturbed by a second SIGTERM. Outside the main
    thread (where Python cannot set handlers) SIGTERM keeps its default action.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _sigterm_raising():
            return command(*args, **kwargs)

    return cast("F", run)


@contextmanager
def _sigterm_raising() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise TerminatedError

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
