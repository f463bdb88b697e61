"""One lock per agent that holds across processes (a Redis lock with a lease kept alive by a watchdog).

Waiters in the same process queue up in FIFO order on a local ``asyncio.Lock`` first, so only one task per
process polls Redis for a given agent. The lock is not re-entrant: a task that already holds an agent's lock
must not ask for it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from bot.events import AgentKey
from memory.keys import RedisKeys
from memory.redis_client import ANY_REDIS_ERROR, AsyncRedis

log = logging.getLogger(__name__)


class AgentLockTimeout(TimeoutError):
    """The agent stayed busy (locked by another turn or process) for longer than the wait limit."""


class _LocalQueue:
    """A per-process FIFO queue for one lock name, dropped when nobody uses it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class RedisAgentLocks:
    """``AgentLocks`` on Redis.

    ``lease_seconds`` is the TTL of the Redis key: if the process dies, the lock frees itself after it. While
    held, a watchdog renews the lease every third of it, so a long turn never loses the lock. Waiting longer than
    ``wait_seconds`` raises ``AgentLockTimeout`` (a ``TimeoutError``).
    """

    def __init__(
        self,
        redis: AsyncRedis,
        keys: RedisKeys,
        lease_seconds: float = 60.0,
        wait_seconds: float = 300.0,
        poll_seconds: float = 0.05,
    ) -> None:
        if lease_seconds <= 0 or wait_seconds < 0:
            raise ValueError("lease_seconds must be positive and wait_seconds not negative")
        self._redis = redis
        self._keys = keys
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._poll = poll_seconds
        self._local: dict[str, _LocalQueue] = {}

    def hold(self, agent: AgentKey) -> AbstractAsyncContextManager[None]:
        return self._hold(agent)

    @contextlib.asynccontextmanager
    async def _hold(self, agent: AgentKey) -> AsyncIterator[None]:
        name = self._keys.lock(agent)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        local = self._local.setdefault(name, _LocalQueue())
        local.users += 1
        try:
            try:
                async with asyncio.timeout(self._wait):
                    await local.lock.acquire()
            except TimeoutError:
                raise self._timeout(agent) from None
            try:
                lock = self._redis.lock(name, timeout=self._lease, sleep=self._poll, blocking=True, thread_local=False)
                if not await lock.acquire(blocking_timeout=max(0.0, deadline - loop.time())):
                    raise self._timeout(agent)
                watchdog = asyncio.create_task(self._renew(lock, agent), name=f"lock-watchdog:{agent}")
                try:
                    yield
                finally:
                    watchdog.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog
                    await self._release(lock, agent)
            finally:
                local.lock.release()
        finally:
            local.users -= 1
            if local.users == 0:
                self._local.pop(name, None)

    def _timeout(self, agent: AgentKey) -> AgentLockTimeout:
        return AgentLockTimeout(
            f"agent {agent} is still busy after waiting {self._wait:g}s for its lock (another turn or process "
            "holds it); try again later"
        )

    async def _renew(self, lock: Lock, agent: AgentKey) -> None:
        """Reset the lease to its full length every third of it while the lock is held."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await lock.reacquire()
            except LockError:
                log.error("lost the lock of agent %s: its lease expired before it could be renewed", agent)
                return
            except ANY_REDIS_ERROR as exc:  # a blip: the lease still has two thirds left, try again next round
                log.warning("could not renew the lock of agent %s: %s", agent, exc)

    async def _release(self, lock: Lock, agent: AgentKey) -> None:
        try:
            await lock.release()
        except LockError:
            log.warning("the lock of agent %s had already expired when the turn ended", agent)
        except ANY_REDIS_ERROR as exc:  # the lease frees it when it runs out
            log.warning("could not release the lock of agent %s: %s", agent, exc)
