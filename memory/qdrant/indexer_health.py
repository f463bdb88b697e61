"""The recall indexer's health: healthy, or backing off after failures (since when, why, when it tries next).

One object is shared by the indexer, which records its failures and successes here and sleeps the delays it is
given, and by recall reads, which do not wait for the indexer to catch up while it is backing off: a search then
uses what is indexed (and words alone when the embedder is down) at once instead of waiting in vain.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from memory.storage_faults import describe_failure

__all__ = ["IndexerHealth"]


class IndexerHealth:
    """Exponential backoff on consecutive failures: ``first_delay`` doubled per failure, at most ``max_delay``."""

    def __init__(self, first_delay: float = 0.5, max_delay: float = 30.0, *, storage_dir: Path | None = None) -> None:
        if first_delay <= 0 or max_delay < first_delay:
            raise ValueError("backoff delays must be positive, with max_delay >= first_delay")
        self._first = first_delay
        self._max = max_delay
        self._storage_dir = storage_dir  # the embedded store's directory: tells a full disk from other I/O errors
        self._step = 0
        self._next_try = 0.0
        self.failing_since: datetime | None = None
        self.reason = ""

    @property
    def backing_off(self) -> bool:
        """True from the first failure until the next success."""
        return self.failing_since is not None

    @property
    def step(self) -> int:
        """Consecutive failures so far (0 when healthy)."""
        return self._step

    def failed(self, exc: BaseException) -> float:
        """Record a failure; return how long to wait before trying again."""
        if self.failing_since is None:
            self.failing_since = datetime.now(UTC)
        delay: float = min(self._first * 2.0 ** min(self._step, 32), self._max)
        self._step += 1
        self.reason = describe_failure(exc, self._storage_dir)
        self._next_try = time.monotonic() + delay
        return delay

    def recovered(self) -> float | None:
        """Record a success; return how many seconds the failures lasted, or None when it was healthy."""
        if self.failing_since is None:
            return None
        lasted = (datetime.now(UTC) - self.failing_since).total_seconds()
        self.failing_since, self.reason, self._step = None, "", 0
        return lasted

    def describe(self) -> str:
        """``healthy``, or ``backing off since <UTC time> (<reason>), next try in <n> s``."""
        if self.failing_since is None:
            return "healthy"
        wait = max(0.0, self._next_try - time.monotonic())
        return f"backing off since {self.failing_since:%Y-%m-%d %H:%M:%S} UTC ({self.reason}), next try in {wait:.0f} s"
