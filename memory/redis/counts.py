"""How many recall messages and archival notes each agent has, kept in Redis (one hash per agent).

The system prompt shows both numbers on every step, and a filtered count scans every point in embedded Qdrant
(seconds at 100k points, on the event loop). So the stores keep the numbers here as they write: an insert adds
the points that are new, a delete subtracts what it removed, an erase drops them. A missing number is zero. Each
kind has two numbers: all points (field ``recall``), and the public ones a channel turn may see (``recall:public``).

The numbers are built once from Qdrant by ``ensure_counted`` (one pass over both collections when a Redis
holds none yet: a first start, an upgrade, or a Redis that lost its data), before anything is written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from bot.core.events import AgentKey, Scope
from memory.qdrant.backend import VectorCollection
from memory.redis.client import AsyncRedis
from memory.redis.keys import RedisKeys

log = logging.getLogger(__name__)

Kind = Literal["recall", "archival"]
_PAGE = 1000

# KEYS: the agent's counts hash. ARGV: field, change pairs. Never below zero; a hash of zeros is deleted (a missing
# number is zero), so a late delete after an erase leaves no key behind.
_ADD = """
if tonumber(ARGV[2]) < 0 and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) < 0 then
    redis.call('HSET', KEYS[1], ARGV[i], 0)
  end
end
for _, value in ipairs(redis.call('HVALS', KEYS[1])) do
  if tonumber(value) > 0 then return 1 end
end
redis.call('DEL', KEYS[1])
return 1
"""


def _field(kind: Kind, scope: Scope) -> str:
    return f"{kind}:public" if scope == Scope.PUBLIC else kind


class MemoryCounts:
    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._add = redis.register_script(_ADD)

    async def get(self, agent: AgentKey, kind: Kind, context_scope: Scope = Scope.PRIVATE) -> int:
        """Points of ``kind`` a search from ``context_scope`` could find (only public ones from PUBLIC)."""
        raw = await self._redis.hget(self._keys.memory_counts(agent), _field(kind, context_scope))
        return int(raw) if raw is not None else 0

    async def add(self, agent: AgentKey, kind: Kind, scopes: Iterable[Scope], *, sign: int = 1) -> None:
        """Count points stored (``sign`` 1) or deleted (``sign`` -1), one scope per point."""
        tally = Counter(scopes)
        total, public = sum(tally.values()), tally[Scope.PUBLIC]
        args: list[str | int] = [kind, sign * total] if total else []
        if public:
            args += [_field(kind, Scope.PUBLIC), sign * public]
        if args:
            await self._add(keys=[self._keys.memory_counts(agent)], args=args)

    async def forget(self, agent: AgentKey, kind: Kind) -> None:
        """The agent has no points of ``kind`` any more (after an erase)."""
        await self._redis.hdel(self._keys.memory_counts(agent), kind, _field(kind, Scope.PUBLIC))

    async def ensure_counted(self, collections: dict[Kind, VectorCollection]) -> bool:
        """Count every agent's points once if this Redis has no counts yet; True when it counted.

        Runs at start, before the stores write. Several processes starting together count once (a lock).
        """
        ready = self._keys.memory_counts_ready()
        if await self._redis.exists(ready):
            return False
        async with self._redis.lock(f"{ready}:lock", timeout=600, blocking_timeout=600):
            if await self._redis.exists(ready):
                return False
            fields: dict[str, dict[str, int]] = {}
            for kind, collection in collections.items():
                for (agent, scope), count in (await _tally(collection)).items():
                    per_agent = fields.setdefault(agent, {})
                    per_agent[kind] = per_agent.get(kind, 0) + count
                    if scope == Scope.PUBLIC.value:
                        per_agent[_field(kind, Scope.PUBLIC)] = count
            agents = set(fields)
            async with self._redis.pipeline(transaction=False) as pipe:
                for agent, mapping in fields.items():
                    key = self._keys.memory_counts(AgentKey.parse(agent))
                    pipe.delete(key)
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                pipe.set(ready, "1")
                await pipe.execute()
        log.info("counted stored memory per agent", extra={"agents": len(agents)})
        return True


async def _tally(collection: VectorCollection) -> Counter[tuple[str, str]]:
    """Points per (agent, scope) in ``collection`` (one scroll over the payloads)."""
    tally: Counter[tuple[str, str]] = Counter()
    offset = None
    while True:
        records, offset = await collection.scroll((), limit=_PAGE, offset=offset, payload=["agent", "scope"])
        tally.update((str(r.payload.get("agent")), str(r.payload.get("scope"))) for r in records)
        if offset is None:
            return tally
