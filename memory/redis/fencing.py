"""Checking a write's fencing token (``bot.core.memory_types.Fence``) against the agent's lock, in Redis.

Scripts that write an agent's keys start with :func:`guard_lua`: when a token is given and the lock key no longer
holds it, the script writes nothing and fails with ``LOCKLOST``, which :func:`refused_as_lock_lost` turns into
``bot.core.memory_types.LockLost``. Writes that cannot share a script with the lock key (the recall outbox lives in
another cluster slot; archival notes go to Qdrant) call :meth:`Fencing.check` just before they write: the window left is
one round trip, and a holder only gets there after its lease went unrenewed for a whole lease.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.exceptions import ResponseError

from bot.core.events import AgentKey
from bot.core.memory_types import Fence, LockLost, fence_token
from memory.redis.client import AsyncRedis
from memory.redis.keys import RedisKeys

LOCK_LOST = "LOCKLOST"


def guard_lua(lock_key: str, token: str) -> str:
    """Lua that aborts the script, before any write, unless ``token`` (a Lua expression; '' = unfenced) is the
    value of ``lock_key`` (a Lua expression naming the lock key)."""
    return (
        f"if {token} ~= '' and redis.call('GET', {lock_key}) ~= {token} then\n"
        f"  return redis.error_reply('{LOCK_LOST} the agent lock is no longer held by this turn')\n"
        "end\n"
    )


def lock_lost(fence: Fence | None) -> LockLost:
    where = f" (holding {fence})" if fence is not None else ""
    return LockLost(f"the agent's lock was lost{where}: another turn or process holds it now; the write was refused")


@contextlib.contextmanager
def refused_as_lock_lost(fence: Fence | None) -> Iterator[None]:
    """Turn a script's ``LOCKLOST`` error into ``LockLost``."""
    try:
        yield
    except ResponseError as exc:
        if str(exc).startswith(LOCK_LOST):
            raise lock_lost(fence) from None
        raise


class Fencing:
    """Checks a token against the lock key, for writes that cannot check it in their own script."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def check(self, fence: Fence | None, agent: AgentKey) -> None:
        """Raise LockLost unless ``fence`` (None: unfenced) still holds ``agent``'s lock."""
        token = fence_token(fence, agent)
        if not token:
            return
        held = await self._redis.get(self._keys.lock(agent))
        if held is None or (held.decode() if isinstance(held, bytes) else held) != token:
            raise lock_lost(fence)
