"""Define the one tree of errors that emloop-ds raises for failures a user can cause.

::

    EmloopDsError                 exit code 1 unless a subclass says otherwise
    ├── ConfigError               exit code 2: config file, YAML, overrides, class path, missing keys
    ├── CacheError                a stream cache could not be written or read (core/cache/)
    ├── DatasetError              the dataset's own code failed (import, constructor, method)
    ├── StreamError               a stream could not be read
    │   ├── StreamProducerError   a buffered stream's producer thread failed; also a ChildProcessError
    │   └── StreamNotEnteredError a buffered stream was read outside `with`; also a ValueError
    └── DownloadError             a URL could not be fetched
        ├── ChecksumError         the fetched bytes do not match the configured hash
        ├── ExtractionError       an archive is broken or unsafe to extract
        └── DownloadCancelledError  exit code 130: the download was interrupted (Ctrl-C)

    TerminatedError               exit code 143: SIGTERM, raised as a KeyboardInterrupt (not one of ours)

Each error carries ``exit_code``; the CLI root is the one place that turns it into a process exit.
``describe_exception`` renders any exception as the one line our messages quote.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "ChecksumError",
    "ConfigError",
    "DatasetError",
    "DownloadCancelledError",
    "DownloadError",
    "EmloopDsError",
    "ExtractionError",
    "StreamError",
    "StreamNotEnteredError",
    "StreamProducerError",
    "TerminatedError",
    "describe_exception",
]


class EmloopDsError(Exception):
    """Base of every error a user can cause; its message says what failed and what to do."""

    exit_code = 1


class ConfigError(EmloopDsError):
    """Reject a configuration: a missing or malformed config, override, class path or key."""

    exit_code = 2


class CacheError(EmloopDsError):
    """Report that a stream cache could not be written, or that a cache on disk is missing or damaged."""


class DatasetError(EmloopDsError):
    """Report that the dataset's own code failed while being imported, built or called."""


class StreamError(EmloopDsError):
    """Report that a stream could not be read."""


class StreamProducerError(StreamError, ChildProcessError):
    """Report that the producer thread of a buffered stream failed; ``__cause__`` is the original error.

    It is a ``ChildProcessError`` as the emloop documentation of ``StreamWrapper`` promises, and one of our
    errors so that the command line reports it as one line.
    """


class StreamNotEnteredError(StreamError, ValueError):
    """Report that a buffered stream was read outside ``with``, which runs and stops its producer thread.

    It is a ``ValueError`` as emloop raises there, and one of our errors so that it reads as one line.
    """


class DownloadError(EmloopDsError):
    """Report that a file could not be downloaded."""


class ChecksumError(DownloadError):
    """Report that downloaded bytes do not match the configured checksum."""


class ExtractionError(DownloadError):
    """Report that an archive is broken or would write outside its folder."""


class DownloadCancelledError(DownloadError):
    """Report that a download stopped because it was interrupted; its partial file is kept for resuming."""

    exit_code = 130


class TerminatedError(KeyboardInterrupt):
    """Report SIGTERM (sent by SLURM or Kubernetes before a kill) as an interruption, as Ctrl-C is.

    It is a ``KeyboardInterrupt``, so that everything that stops cleanly on Ctrl-C stops the same way.
    """

    exit_code = 143


def describe_exception(exc: BaseException) -> str:
    """Return ``Type: first line of the message`` of an exception, for quoting in a one-line message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
