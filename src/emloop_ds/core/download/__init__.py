"""Download a dataset's files into its data root: fetch, verify, resume, extract, and record what is done.

Other packages use only the names below. The progress interface is imported at once (it is light and part
of the public API); the rest is imported on first use, so that ``emloop --help``, ``info`` and ``stream``
load none of the download machinery.

Modules: ``fetch`` (a dataset's entries, in parallel), ``check`` (``--check``), ``entry`` (the config's
entries), ``transfer`` (one URL), ``response`` and ``session`` (HTTP through requests), ``part`` (the
part file), ``retry`` (the backoff rule), ``state`` (per-file records), ``journal`` (their
group-committed journals), ``durable`` (flushed renames), ``lock`` (filelock), ``progress``,
``parallel``, ``checksum``, ``extract`` and ``archive_member``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emloop_ds.core.download.progress import FileProgress, LineProgress, NoProgress, Progress, TqdmProgress

if TYPE_CHECKING:
    from emloop_ds.core.download.check import CheckResult, check_dataset
    from emloop_ds.core.download.fetch import FileResult, fetch_dataset, raise_failures

__all__ = [
    "CheckResult",
    "FileProgress",
    "FileResult",
    "LineProgress",
    "NoProgress",
    "Progress",
    "TqdmProgress",
    "check_dataset",
    "fetch_dataset",
    "raise_failures",
]

_LAZY = {
    "CheckResult": "check",
    "check_dataset": "check",
    "FileResult": "fetch",
    "fetch_dataset": "fetch",
    "raise_failures": "fetch",
}


def __getattr__(name: str) -> Any:
    """Import ``fetch`` or ``check`` when one of their names is first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
