"""Say how often and how patiently a download retries: the backoff rule shared by urllib3's status retries
and our own retries of cut, stalled and refused transfers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_RETRY", "RETRY_STATUSES", "RetryPolicy"]

RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})
"""HTTP statuses that may pass and are retried with backoff; other errors fail the URL at once."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transfer that failed for a reason that may pass."""

    attempts: int = 5
    """Attempts in a row that receive nothing; an attempt that received data resets the count."""
    backoff_s: float = 1.0
    """Wait before the first retry; doubled for each further one (1, 2, 4, 8 s)."""
    max_backoff_s: float = 60.0
    """The longest wait; a server asking (Retry-After) for longer fails the URL at once."""
    refused_retries: int = 3
    """Retries of a refused connection (nothing listens): few and quick, since it rarely passes."""
    refused_backoff_s: float = 0.5
    """Wait before the first retry of a refused connection, doubled for each further one (0.5, 1, 2 s)."""
    sleep: Callable[[float], None] | None = None
    """Wait this long; ``None`` waits on the run's cancel event, so that Ctrl-C ends the wait."""

    def backoff(self, failures: int) -> float:
        """Return the wait before the retry that follows ``failures`` failed attempts in a row."""
        return float(min(self.backoff_s * 2.0 ** (failures - 1), self.max_backoff_s))


DEFAULT_RETRY = RetryPolicy()
"""The retry policy used when none is passed."""
