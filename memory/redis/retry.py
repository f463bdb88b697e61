"""How every Redis client membot builds rides out a restart, a Sentinel failover or a pause: redis-py's ``Retry``
with exponential backoff bounded by a time budget, health checks, and connect/read timeouts (``RedisResilience``).
``memory.redis.url`` passes ``client_options`` to every client it builds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import redis.asyncio.retry
import redis.retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["RETRIED_ERRORS", "RedisResilience"]

T = TypeVar("T")
RETRIED_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
"""Errors worth another attempt: the server could not be reached, or did not answer in time."""


@dataclass(frozen=True)
class RedisResilience:
    """How every Redis client membot builds rides out a restart, a failover or a pause.

    - ``retry_seconds``: connection and timeout errors are retried with exponential backoff (``backoff_base``
      doubling up to ``backoff_cap``) until this many seconds after the command started; then the error is
      raised (the runtime journals the message, ``memory.journal``). The budget is a deadline, not a count,
      because redis-py nests a connect retry inside each command's retry.
    - ``socket_timeout``: a command's reply is awaited this long. Longer than the pauses membot bridges: a paused
      server delays the reply rather than making membot send the command a second time.
    - ``connect_timeout``: a new connection gives up after this long (a refused one at once).
    - ``health_check_interval``: a pooled connection idle longer than this is checked with a PING first, so one
      that a restart broke is replaced before a command is written on it.

    What is retried, and why it does not double-write: every command (reads, writes, Lua scripts, MULTI/EXEC
    pipelines) is retried, but only on connection and timeout errors. A failed connect, a failed health-check
    PING and a failed write all mean the server never executed the command, so a retry is its first execution;
    a MULTI whose connection broke before EXEC is discarded by the server; EVALSHA after a restart gets NOSCRIPT
    and redis-py loads the script again. The one ambiguous case is a reply lost after the server executed the
    command: a paused server (SIGSTOP, a stalled host) would execute the first copy when it resumes, which is why
    the read timeout outlasts the pauses membot bridges (no timeout, no second copy); a server that dies in the
    microseconds between executing a command and sending its reply can see it twice (an INCR counted twice, a
    queue entry or audit entry twice). The lock's ``SET NX`` is safe: a replay finds its own lock and waits out
    the lease at worst.
    """

    retry_seconds: float = 10.0
    socket_timeout: float = 15.0
    connect_timeout: float = 3.0
    health_check_interval: float = 1.0
    backoff_base: float = 0.05
    backoff_cap: float = 1.0

    def retries(self) -> int:
        """How many backoff steps fill ``retry_seconds`` (the cluster client counts attempts, not time)."""
        total, count = 0.0, 0
        while total < self.retry_seconds:
            count += 1
            total += min(self.backoff_cap, self.backoff_base * 2**count)
        return count

    def brief(self) -> RedisResilience:
        """A shorter budget for a synchronous client called on the event loop (APScheduler's job store reads due
        jobs there; it retries a failed read itself a few seconds later), so an outage never freezes the loop
        for long."""
        return replace(
            self,
            retry_seconds=min(self.retry_seconds, 1.0),
            socket_timeout=min(self.socket_timeout, 3.0),
            connect_timeout=min(self.connect_timeout, 1.0),
        )

    def async_retry(self) -> redis.asyncio.retry.Retry:
        return _DeadlineAsyncRetry(self)

    def sync_retry(self) -> redis.retry.Retry:
        return _DeadlineSyncRetry(self)

    def client_options(self, *, sync: bool) -> dict[str, Any]:
        """Keyword arguments of a redis-py client (``redis.Redis``, a Sentinel's ``master_for``, a cluster)."""
        return {
            "retry": self.sync_retry() if sync else self.async_retry(),
            "retry_on_error": list(RETRIED_ERRORS),
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "health_check_interval": self.health_check_interval,
        }

    def sentinel_options(self) -> dict[str, Any]:
        """Options of the connections to the Sentinels themselves (asked again at every reconnect)."""
        return {"socket_timeout": self.connect_timeout, "socket_connect_timeout": self.connect_timeout}


class _DeadlineAsyncRetry(redis.asyncio.retry.Retry):
    """redis-py's ``Retry`` with exponential backoff that also stops ``retry_seconds`` after the call began."""

    def __init__(self, resilience: RedisResilience) -> None:
        backoff = ExponentialBackoff(cap=resilience.backoff_cap, base=resilience.backoff_base)
        super().__init__(backoff, resilience.retries(), RETRIED_ERRORS)  # type: ignore[arg-type]
        self._budget = resilience.retry_seconds

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        deadline = time.monotonic() + self._budget
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                await (fail(error, failures) if with_failure_count else fail(error))
                remaining = deadline - time.monotonic()
                if failures > self._retries or remaining <= 0:
                    raise error
                await asyncio.sleep(min(self._backoff.compute(failures), remaining))


class _DeadlineSyncRetry(redis.retry.Retry):
    """The synchronous twin of ``_DeadlineAsyncRetry`` (the APScheduler job store's client)."""

    def __init__(self, resilience: RedisResilience) -> None:
        backoff = ExponentialBackoff(cap=resilience.backoff_cap, base=resilience.backoff_base)
        super().__init__(backoff, resilience.retries(), RETRIED_ERRORS)
        self._budget = resilience.retry_seconds

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        deadline = time.monotonic() + self._budget
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                fail(error, failures) if with_failure_count else fail(error)
                remaining = deadline - time.monotonic()
                if failures > self._retries or remaining <= 0:
                    raise error
                time.sleep(min(self._backoff.compute(failures), remaining))
