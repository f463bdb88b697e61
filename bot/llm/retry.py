"""Retries with exponential backoff and jitter for transient model errors (429, 5xx, timeouts, lost connections).

The provider modules say which errors are transient (``classify``); this module only waits and tries again.
After the last attempt a transient error becomes a ``ModelError``; any other error passes through untouched, on
the first attempt, for the provider module to translate.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from bot.llm.types import ModelError

__all__ = ["RetryPolicy", "Transient", "call_with_retry", "parse_retry_after", "transient_status"]

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: ``attempts`` in total, delays doubling from ``base_delay`` up to
    ``max_delay`` with up to ``jitter`` of each delay taken off at random. A server's ``retry-after`` is honoured
    but never waited beyond ``max_delay``."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("delays must be >= 0 and jitter within [0, 1]")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        backoff = min(self.base_delay * 2.0 ** (retry - 1), self.max_delay)
        return backoff * (1 - self.jitter * random.random())


@dataclass(frozen=True)
class Transient:
    """A transient failure worth another attempt: a short reason for logs and the server's wish, if any."""

    reason: str
    retry_after: float | None = None


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None when absent or odd."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def transient_status(status: int, headers: Mapping[str, str] | None = None) -> Transient | None:
    """A Transient for 408, 429 and 5xx responses (529 "overloaded" included); None for any other status."""
    if status in RETRYABLE_STATUS or status >= 500:
        label = "rate limited" if status == 429 else "server error"
        return Transient(f"{label} ({status})", parse_retry_after(headers))
    return None


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    classify: Callable[[Exception], Transient | None],
    what: str = "model request",
) -> T:
    """Await ``call()`` until it succeeds, retrying transient errors per ``policy``.

    Raises ModelError (chained to the last error) once the attempts are used up; non-transient errors are
    re-raised as they are.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except Exception as exc:
            transient = classify(exc)
            if transient is None:
                raise
            if attempt >= policy.attempts:
                raise ModelError(f"{what} failed after {attempt} attempts: {transient.reason}") from exc
            wait = policy.delay(attempt, transient.retry_after)
            log.warning("%s: %s; retry %d/%d in %.2fs", what, transient.reason, attempt, policy.attempts - 1, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
