"""Define ``emloop dataset download``: fetch, verify and extract the dataset's files into its data_root."""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from emloop_ds.cli.options import (
    VERBOSE_KEY,
    config_argument,
    json_option,
    overrides_argument,
    verbose_option,
)

if TYPE_CHECKING:
    from emloop_ds.core.download import FileProgress, Progress

__all__ = ["download"]


@click.command("download")
@config_argument
@overrides_argument
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="How many files to download (or, with --check, to verify) at once.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Retry a connection that stays silent this long (a stalled transfer).",
)
@click.option("--force", is_flag=True, help="Download every file again, even those already complete.")
@click.option(
    "--check",
    is_flag=True,
    help="Make no request: verify the size and checksum of every downloaded and extracted file.",
)
@json_option
@verbose_option
def download(
    config: Path,
    overrides: tuple[str, ...],
    jobs: int,
    timeout_s: float,
    force: bool,
    check: bool,
    as_json: bool,
) -> None:
    """Download the dataset's files into its data_root: resume, verify checksums, retry, extract archives.

    Example: emloop dataset download examples/mnist/config.yaml --jobs 8
    """
    from emloop_ds.core.config import load_config
    from emloop_ds.core.factory import call_method, create_dataset

    dataset = create_dataset(load_config(config, overrides))
    has_own_download = _has_own_download(dataset)  # also rejects a dataset with nothing to download
    if check:
        _check_files(dataset, jobs=jobs, as_json=as_json)
        return
    if has_own_download:
        call_method(dataset, "download")
        return
    _download_files(dataset, jobs=jobs, timeout_s=timeout_s, force=force, as_json=as_json)


def _has_own_download(dataset: Any) -> bool:
    """Tell whether the dataset's download() is its own, not the standard one (which we run ourselves)."""
    from emloop_ds.core.dataset import DownloadableDataset
    from emloop_ds.core.errors import ConfigError

    if isinstance(dataset, DownloadableDataset):
        return type(dataset).download is not DownloadableDataset.download
    if callable(getattr(dataset, "download", None)):
        return True
    raise ConfigError(
        f"dataset {type(dataset).__name__} has no files to download; derive it from "
        "emloop_ds.DownloadableDataset and give data_root and download_urls in the config"
    )


def _download_files(dataset: Any, *, jobs: int, timeout_s: float, force: bool, as_json: bool) -> None:
    from emloop_ds.cli.stdout import is_terminal
    from emloop_ds.core.download import LineProgress, TqdmProgress, fetch_dataset
    from emloop_ds.core.errors import DownloadError

    progress: Progress = TqdmProgress() if sys.stderr.isatty() else LineProgress()
    preload = None if as_json or not is_terminal() else _PreloadRich(progress)  # only a terminal gets rich
    results = fetch_dataset(
        dataset.data_root,
        dataset.download_urls,
        jobs=jobs,
        timeout_s=timeout_s,
        force=force,
        progress=progress if preload is None else preload,
    )
    if preload is not None:
        preload.join()
    from emloop_ds.cli import render

    render.report_download_warnings(results)
    if as_json:
        render.print_json(render.download_results_json(results))
    else:
        render.render_download_results(results)
    failed = sum(result.error is not None for result in results)
    if failed:
        verbose = bool(click.get_current_context().meta.get(VERBOSE_KEY))
        render.report_download_failures(results, verbose=verbose)
        raise DownloadError(
            f"{failed} of {len(results)} files failed; fix the causes above and run the command again "
            "(complete files are kept, partial ones resumed)"
        )


def _check_files(dataset: Any, *, jobs: int, as_json: bool) -> None:
    from emloop_ds.cli import render
    from emloop_ds.core.dataset import DownloadableDataset
    from emloop_ds.core.download import check_dataset
    from emloop_ds.core.errors import ConfigError, DownloadError

    if not isinstance(dataset, DownloadableDataset):
        raise ConfigError(
            f"cannot check {type(dataset).__name__}: --check needs a DownloadableDataset, whose data_root "
            "and download_urls say what to verify"
        )
    results = check_dataset(dataset.data_root, dataset.download_urls, jobs=jobs)
    if as_json:
        render.print_json(render.check_results_json(results))
    else:
        render.render_check_results(results)
    damaged = sum(not result.is_intact for result in results)
    if damaged:
        raise DownloadError(
            f"{damaged} of {len(results)} files are missing, corrupt or incomplete; run "
            "`emloop dataset download` with this config to fetch or restore them"
        )


class _PreloadRich:
    """Pass progress on, and import rich (for a terminal's final table) once the first response has arrived.

    Importing rich takes ~25 ms of CPU. Started with the run, it would hold the GIL while the first
    requests are being sent and delay them; started when the first response arrives, it runs while the
    downloads wait on the network.
    """

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._preload = threading.Thread(target=_import_rich, name="emloop-ds-preload", daemon=True)
        self._claimed = threading.Lock()

    def start_run(self, total_files: int) -> None:
        self._progress.start_run(total_files)

    def open_file(self, name: str) -> FileProgress:
        return _PreloadOnStart(self._progress.open_file(name), self)

    def finish_file(self, name: str, status: str) -> None:
        self._progress.finish_file(name, status)

    def end_run(self) -> None:
        self._progress.end_run()

    @property
    def preload_started(self) -> bool:
        """Whether the import has been started."""
        return self._preload.ident is not None  # set once the thread runs

    def start_preload(self) -> None:
        """Start the import, once; without a thread to spare, rendering imports rich itself."""
        if self._claimed.acquire(blocking=False):
            with contextlib.suppress(RuntimeError):  # "can't start new thread"
                self._preload.start()

    def join(self) -> None:
        """Wait for the import, if it was started."""
        if self.preload_started:
            self._preload.join()


class _PreloadOnStart:
    def __init__(self, progress: FileProgress, owner: _PreloadRich) -> None:
        self._progress = progress
        self._owner = owner

    def start(self, total_bytes: int | None, done_bytes: int) -> None:
        self._owner.start_preload()
        self._progress.start(total_bytes, done_bytes)

    def advance(self, n_bytes: int) -> None:
        self._progress.advance(n_bytes)

    def note(self, message: str) -> None:
        self._progress.note(message)

    def close(self) -> None:
        self._progress.close()


def _import_rich() -> None:
    import rich.console
    import rich.table  # noqa: F401
