"""The recall outbox: messages on their way into recall memory, durable in Redis until they are indexed.

A turn stores its messages here (one Redis round trip) instead of embedding and upserting them on the way to the
reply; ``memory.indexer.RecallIndexer`` drains the outbox in batches. Layout, all under one hash tag so the
scripts stay legal on a Redis Cluster:

- a stream of entries (field ``a`` the agent key, ``e`` the ``RecallEntry`` as JSON), read through the consumer
  group ``indexers``, so several processes share the work and an entry a stopped process had claimed is claimed
  again by another (``XAUTOCLAIM``) instead of being lost;
- a hash agent key → entries not yet indexed, which searches wait on and counts add in;
- a dead-letter stream for entries that could not be indexed after retries (kept, never dropped).

Per agent, it also keeps the latest indexed message of each channel (time and point id), so indexing the next
one can mix in its vector without searching the collection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import ResponseError

from bot.events import AgentKey, Scope
from bot.memory_types import Fence, RecallEntry
from memory.fencing import Fencing
from memory.keys import RedisKeys
from memory.redis_client import AsyncRedis
from memory.search import from_rfc3339, to_rfc3339

GROUP = "indexers"

# KEYS: stream, pending hash. ARGV: group, then stream id / agent pairs. Acks and deletes the entries and lowers
# each agent's pending count, dropping the field at zero (an erased user leaves no trace here).
_ACK = """
local done = 0
for i = 2, #ARGV, 2 do
  local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
  if acked == 1 then
    done = done + 1
    if redis.call('HINCRBY', KEYS[2], ARGV[i + 1], -1) <= 0 then
      redis.call('HDEL', KEYS[2], ARGV[i + 1])
    end
  end
end
return done
"""


# KEYS: one agent's latest-message hash. ARGV: channel, "time|point id" pairs. Keeps the later of old and new.
_SET_LATEST = """
for i = 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old or old < ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""


def entry_to_json(entry: RecallEntry) -> str:
    return json.dumps(
        {
            "agent": str(entry.agent),
            "role": entry.role,
            "text": entry.text,
            "timestamp": to_rfc3339(entry.timestamp),
            "author": entry.author,
            "platform": entry.platform,
            "channel": entry.channel,
            "scope": entry.scope.value,
            "message_id": entry.message_id,
            "attachment_text": entry.attachment_text,
        }
    )


def entry_from_json(raw: str | bytes) -> RecallEntry:
    """Raise ValueError (or KeyError) when ``raw`` is not an outbox entry."""
    data: dict[str, Any] = json.loads(raw)
    return RecallEntry(
        agent=AgentKey.parse(data["agent"]),
        role=data["role"],
        text=data["text"],
        timestamp=from_rfc3339(data["timestamp"]),
        author=data["author"],
        platform=data["platform"],
        channel=data["channel"],
        scope=Scope(data["scope"]),
        message_id=data.get("message_id"),
        attachment_text=data.get("attachment_text"),
    )


@dataclass(frozen=True)
class OutboxItem:
    """One claimed stream entry: its id, its agent, and the entry (None when it could not be parsed)."""

    stream_id: str
    agent: str
    entry: RecallEntry | None
    raw: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RecallOutbox:
    """Redis side of the outbox: put, claim, acknowledge, count pending, dead-letter."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._stream = keys.recall_outbox()
        self._pending = keys.recall_outbox_pending()
        self._dead = keys.recall_outbox_dead()
        self._keys = keys
        self._fencing = Fencing(redis, keys)
        self._ack = redis.register_script(_ACK)
        self._set_latest = redis.register_script(_SET_LATEST)

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def put(self, entries: Sequence[RecallEntry], *, fence: Fence | None = None) -> None:
        """Store entries for indexing, atomically with their agents' pending counts.

        With a ``fence``, first check that it still holds the lock of each entry's agent (LockLost otherwise): the
        outbox is in another cluster slot than the lock, so the check is a command of its own (``memory.fencing``).
        """
        if not entries:
            return
        for agent in {entry.agent for entry in entries} if fence is not None else ():
            await self._fencing.check(fence, agent)
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry in entries:
                pipe.xadd(self._stream, {"a": str(entry.agent), "e": entry_to_json(entry)})
                pipe.hincrby(self._pending, str(entry.agent), 1)
            await pipe.execute()

    async def pending(self, agent: AgentKey) -> int:
        """Entries of ``agent`` stored but not yet indexed (across all processes)."""
        value = await self._redis.hget(self._pending, str(agent))
        return int(value) if value is not None else 0

    async def wait_indexed(self, agent: AgentKey, within: float) -> bool:
        """Wait until no entry of ``agent`` is waiting; False when ``within`` seconds passed first."""
        deadline = time.monotonic() + within
        pause = 0.002
        while await self.pending(agent) > 0:
            if time.monotonic() + pause > deadline:
                if await self.waiting() == 0:  # a count left behind with nothing to index (e.g. a lost stream)
                    await self._redis.hdel(self._pending, str(agent))
                    return True
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    async def read(self, consumer: str, count: int, block_ms: int | None) -> list[OutboxItem]:
        """Claim up to ``count`` new entries for ``consumer`` (waiting up to ``block_ms``; None = do not wait)."""
        reply: Any = await self._redis.xreadgroup(GROUP, consumer, {self._stream: ">"}, count=count, block=block_ms)
        if not reply:
            return []
        rows = next(iter(reply.values()))[0] if isinstance(reply, dict) else reply[0][1]  # RESP3 or RESP2
        return [self._item(stream_id, fields) for stream_id, fields in rows]

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int) -> list[OutboxItem]:
        """Take over entries another consumer claimed but did not acknowledge within ``min_idle_ms``."""
        items: list[OutboxItem] = []
        start = "0-0"
        while len(items) < count:
            reply: Any = await self._redis.xautoclaim(
                self._stream, GROUP, consumer, min_idle_time=min_idle_ms, start_id=start, count=count - len(items)
            )
            start, rows = _text(reply[0]), reply[1]
            items.extend(self._item(stream_id, fields) for stream_id, fields in rows if fields)
            if start == "0-0":
                break
        return items

    async def ack(self, items: Sequence[OutboxItem]) -> int:
        """Acknowledge and delete indexed entries; returns how many were still pending."""
        if not items:
            return 0
        args: list[str] = [GROUP]
        for item in items:
            args.extend((item.stream_id, item.agent))
        return int(await self._ack(keys=[self._stream, self._pending], args=args))

    async def bury(self, items: Sequence[OutboxItem], reason: str) -> None:
        """Move entries that cannot be indexed to the dead-letter stream (kept for an admin), then ack them."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for item in items:
                pipe.xadd(self._dead, {"a": item.agent, "e": item.raw, "reason": reason[:500]})
            await pipe.execute()
        await self.ack(items)

    async def waiting(self) -> int:
        """Entries of every agent not yet indexed."""
        return int(await self._redis.xlen(self._stream))

    async def dead_letters(self) -> int:
        return int(await self._redis.xlen(self._dead))

    @property
    def dead_letter_key(self) -> str:
        return self._dead

    async def latest(self, agent: AgentKey, channel: str) -> tuple[datetime, str] | None:
        """Time and point id of the latest indexed message of ``agent`` in ``channel``, if known."""
        raw = await self._redis.hget(self._keys.recall_latest(agent), channel)
        if raw is None:
            return None
        moment, _, point_id = _text(raw).partition("|")
        return from_rfc3339(moment), point_id

    async def set_latest(self, latest: Mapping[tuple[AgentKey, str], tuple[datetime, str]]) -> None:
        """Record the latest indexed message per (agent, channel), keeping a later one already recorded."""
        by_agent: dict[AgentKey, list[str]] = {}
        for (agent, channel), (moment, point_id) in latest.items():
            by_agent.setdefault(agent, []).extend((channel, f"{to_rfc3339(moment)}|{point_id}"))
        for agent, args in by_agent.items():
            await self._set_latest(keys=[self._keys.recall_latest(agent)], args=args)

    async def erase(self, agent: AgentKey) -> int:
        """Remove ``agent``'s dead letters and channel pointers (its live entries are indexed and erased first)."""
        await self._redis.delete(self._keys.recall_latest(agent))
        removed = 0
        last = "-"
        while True:
            rows: Any = await self._redis.xrange(self._dead, min=last, count=500)
            mine = [_text(sid) for sid, fields in rows if self._item(sid, fields).agent == str(agent)]
            if mine:
                removed += int(await self._redis.xdel(self._dead, *mine))
            if len(rows) < 500:
                return removed
            last = "(" + _text(rows[-1][0])

    async def close_consumer(self, consumer: str) -> None:
        """Forget ``consumer`` if it has nothing pending (deleting one with pending entries would orphan them)."""
        try:
            mine = await self._redis.xpending_range(self._stream, GROUP, "-", "+", 1, consumername=consumer)
            if not mine:
                await self._redis.xgroup_delconsumer(self._stream, GROUP, consumer)
        except ResponseError:
            pass

    @staticmethod
    def _item(stream_id: bytes | str, fields: dict[Any, Any]) -> OutboxItem:
        values = {_text(k): _text(v) for k, v in fields.items()}
        raw = values.get("e", "")
        try:
            entry: RecallEntry | None = entry_from_json(raw)
        except (ValueError, KeyError, TypeError):
            entry = None
        return OutboxItem(_text(stream_id), values.get("a", ""), entry, raw)
