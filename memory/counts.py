"""How many recall messages and archival notes each agent has, kept in Redis (one hash per agent).

The system prompt shows both numbers on every step, and a filtered count scans every point in embedded Qdrant
(seconds at 100k points, on the event loop). So the stores keep the numbers here as they write: an insert adds
the points that are new, a delete subtracts what it removed, an erase drops them. A missing number is zero.

The numbers are built once from Qdrant by ``ensure_counted`` (one pass over both collections when a Redis
holds none yet: a first start, an upgrade, or a Redis that lost its data), before anything is written.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Literal

import redis.asyncio as aioredis
from qdrant_client import AsyncQdrantClient

from bot.events import AgentKey
from memory.keys import RedisKeys

log = logging.getLogger(__name__)

Kind = Literal["recall", "archival"]
_PAGE = 1000

# KEYS: the agent's counts hash. ARGV: field, change. Never below zero.
_ADD = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) < 0 then
  redis.call('HSET', KEYS[1], ARGV[1], 0)
end
return 1
"""


class MemoryCounts:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._add = redis.register_script(_ADD)

    async def get(self, agent: AgentKey, kind: Kind) -> int:
        raw = await self._redis.hget(self._keys.memory_counts(agent), kind)
        return int(raw) if raw is not None else 0

    async def add(self, agent: AgentKey, kind: Kind, change: int) -> None:
        if change:
            await self._add(keys=[self._keys.memory_counts(agent)], args=[kind, change])

    async def forget(self, agent: AgentKey, kind: Kind) -> None:
        """The agent has no points of ``kind`` any more (after an erase)."""
        await self._redis.hdel(self._keys.memory_counts(agent), kind)

    async def ensure_counted(self, client: AsyncQdrantClient, collections: dict[Kind, str]) -> bool:
        """Count every agent's points once if this Redis has no counts yet; True when it counted.

        Runs at start, before the stores write. Several processes starting together count once (a lock).
        """
        ready = self._keys.memory_counts_ready()
        if await self._redis.exists(ready):
            return False
        async with self._redis.lock(f"{ready}:lock", timeout=600, blocking_timeout=600):
            if await self._redis.exists(ready):
                return False
            tallies = {kind: await _tally(client, name) for kind, name in collections.items()}
            agents = set().union(*tallies.values())
            async with self._redis.pipeline(transaction=False) as pipe:
                for agent in agents:
                    key = self._keys.memory_counts(AgentKey.parse(agent))
                    pipe.delete(key)
                    pipe.hset(key, mapping={kind: tally[agent] for kind, tally in tallies.items() if agent in tally})
                pipe.set(ready, "1")
                await pipe.execute()
        log.info("counted stored memory per agent", extra={"agents": len(agents)})
        return True


async def _tally(client: AsyncQdrantClient, collection: str) -> Counter[str]:
    """Points per agent in ``collection`` (one scroll over the payloads' ``agent`` field)."""
    tally: Counter[str] = Counter()
    offset = None
    while True:
        records, offset = await client.scroll(collection, limit=_PAGE, offset=offset, with_payload=["agent"])
        tally.update(str((record.payload or {}).get("agent")) for record in records)
        if offset is None:
            return tally
