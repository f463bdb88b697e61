"""One lock per agent that holds across processes: a Redis key with a short lease, renewed while it is held, whose
value is the holding's fencing token (``bot.core.memory_types.Fence``).

Acquiring stores ``<number>:<random>`` in the lock key with a lease of ``lease_seconds`` (the number is the Redis
clock in microseconds, so later holdings have larger numbers; no per-agent counter is kept, so an erased user
leaves no key behind once the lock is released); a watchdog renews the lease every ``renew_seconds`` while the
holder runs. A holder killed with ``kill -9`` stops renewing, so the next process gets the agent within one lease
(10 s by default), not minutes.
Stores compare a write's token with the lock key's value (``memory.redis.fencing``), so a holder whose lease ran out
writes nothing more once another took the lock.

Waiters in the same process queue up in FIFO order on a local ``asyncio.Lock`` first, so only one task per
process polls Redis for a given agent. The lock is not re-entrant: a task that already holds an agent's lock
must not ask for it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from bot.core.events import AgentKey
from bot.core.memory_types import Fence
from bot.core.tasks import cancel_requested, stop_task
from memory.redis.client import ANY_REDIS_ERROR, AsyncRedis
from memory.redis.keys import RedisKeys

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 10.0
DEFAULT_RENEW_SECONDS = 3.0
DEFAULT_BUSY_NOTICE_SECONDS = 3.0

# KEYS: lock. ARGV: lease ms, random part. Returns the new token, or nil while someone holds it.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local now = redis.call('TIME')
local token = now[1] .. string.format('%06d', tonumber(now[2])) .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""

# KEYS: lock. ARGV: token, lease ms. 1 when the lease was renewed, 0 when the lock is no longer this token's.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lock. ARGV: token. 1 when released, 0 when it had expired (and maybe been taken by another holder).
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

OnWait = Callable[[], Awaitable[None]]


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

    ``lease_seconds`` is the TTL of the lock key: if the process dies, the lock frees itself after it. While held,
    a watchdog renews it every ``renew_seconds``. Waiting longer than ``wait_seconds`` raises ``AgentLockTimeout``
    (a ``TimeoutError``); a waiter that passed ``on_wait`` has it awaited once after ``busy_notice_seconds`` of
    waiting (for a "still busy" notice).
    """

    def __init__(
        self,
        redis: AsyncRedis,
        keys: RedisKeys,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        wait_seconds: float = 300.0,
        poll_seconds: float = 0.05,
        *,
        renew_seconds: float | None = None,
        busy_notice_seconds: float = DEFAULT_BUSY_NOTICE_SECONDS,
    ) -> None:
        renew = renew_seconds if renew_seconds is not None else min(DEFAULT_RENEW_SECONDS, lease_seconds / 3)
        if lease_seconds <= 0 or wait_seconds < 0:
            raise ValueError("lease_seconds must be positive and wait_seconds not negative")
        if not 0 < renew < lease_seconds:
            raise ValueError("renew_seconds must be positive and shorter than lease_seconds")
        self._redis = redis
        self._keys = keys
        self._lease = lease_seconds
        self._renew_every = renew
        self._wait = wait_seconds
        self._poll = poll_seconds
        self._busy_after = busy_notice_seconds
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew_script = redis.register_script(_RENEW)
        self._release_script = redis.register_script(_RELEASE)
        self._local: dict[str, _LocalQueue] = {}

    def hold(self, agent: AgentKey, *, on_wait: OnWait | None = None) -> AbstractAsyncContextManager[Fence]:
        return self._hold(agent, on_wait)

    @contextlib.asynccontextmanager
    async def _hold(self, agent: AgentKey, on_wait: OnWait | None) -> AsyncIterator[Fence]:
        name = self._keys.lock(agent)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        local = self._local.setdefault(name, _LocalQueue())
        local.users += 1
        notifier = asyncio.create_task(self._notify(agent, on_wait)) if on_wait is not None else None
        try:
            try:
                async with asyncio.timeout(self._wait):
                    await local.lock.acquire()
            except TimeoutError:
                raise self._timeout(agent) from None
            try:
                fence = await self._take(agent, deadline)
                if notifier is not None:
                    notifier.cancel()
                watchdog = asyncio.create_task(self._keep(fence), name=f"lock-watchdog:{agent}")
                try:
                    yield fence
                finally:
                    # at most one renewal period: a renewal stuck behind a slow server must not hold up the turn
                    # (releasing the lock makes a late renewal fail, which ends the watchdog)
                    await stop_task(watchdog, within=self._renew_every)
                    await self._release(fence)
            finally:
                local.lock.release()
        finally:
            if notifier is not None:
                notifier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await notifier
            local.users -= 1
            if local.users == 0:
                self._local.pop(name, None)

    async def _take(self, agent: AgentKey, deadline: float) -> Fence:
        """Poll until the lock is free and ours; raise AgentLockTimeout at ``deadline``."""
        loop = asyncio.get_running_loop()
        keys = [self._keys.lock(agent)]
        lease_ms = int(self._lease * 1000)
        while True:
            token = await self._acquire(keys=keys, args=[lease_ms, uuid.uuid4().hex[:12]])
            if token is not None:
                return Fence(agent, token.decode() if isinstance(token, bytes) else str(token))
            if loop.time() + self._poll > deadline:
                raise self._timeout(agent)
            await asyncio.sleep(self._poll)

    async def _notify(self, agent: AgentKey, on_wait: OnWait) -> None:
        """Call ``on_wait`` once the waiter has waited ``busy_notice_seconds`` (cancelled when the lock is taken)."""
        await asyncio.sleep(self._busy_after)
        try:
            await on_wait()
        except Exception:  # a notice that cannot be shown must not break the wait
            log.warning("could not tell the user that agent %s is busy", agent, exc_info=True)

    def _timeout(self, agent: AgentKey) -> AgentLockTimeout:
        return AgentLockTimeout(
            f"agent {agent} is still busy after waiting {self._wait:g}s for its lock (another turn or process "
            "holds it); try again later"
        )

    async def _keep(self, fence: Fence) -> None:
        """Renew the lease every ``renew_seconds`` while the lock is held; stop once it is lost."""
        lease_ms = int(self._lease * 1000)
        while not cancel_requested():  # see bot.core.tasks
            await asyncio.sleep(self._renew_every)
            try:
                renewed = await self._renew_script(keys=[self._keys.lock(fence.agent)], args=[fence.token, lease_ms])
            except ANY_REDIS_ERROR as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                log.warning("could not renew the lock of agent %s: %s", fence.agent, exc)
                continue  # a blip: the lease may still last, try again next round
            if not renewed:
                log.error(
                    "lost the lock of agent %s (holding %s): its lease expired before it was renewed; this turn's "
                    "further memory writes are refused",
                    fence.agent,
                    fence,
                )
                return

    async def _release(self, fence: Fence) -> None:
        try:
            released = await self._release_script(keys=[self._keys.lock(fence.agent)], args=[fence.token])
        except ANY_REDIS_ERROR as exc:  # the lease frees it when it runs out
            log.warning("could not release the lock of agent %s: %s", fence.agent, exc)
            return
        if not released:
            log.warning("the lock of agent %s (holding %s) had already expired when the turn ended", fence.agent, fence)
