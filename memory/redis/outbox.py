"""The recall outbox: messages on their way into recall memory, durable in Redis until they are indexed.

A turn stores its messages here (one Redis round trip) instead of embedding and upserting them on the way to the
reply; ``memory.qdrant.indexer.RecallIndexer`` drains the outbox in batches. Layout, all under one hash tag so the
scripts stay legal on a Redis Cluster:

- a stream of entries (field ``a`` the agent key, ``e`` the ``RecallEntry`` as JSON), read through the consumer
  group ``indexers``, so several processes share the work and an entry a stopped process had claimed is claimed
  again by another (``XAUTOCLAIM``) instead of being lost;
- a hash agent key → entries not yet indexed, which searches wait on and counts add in;
- a dead-letter stream for entries that could not be indexed after retries (kept, never dropped);
- erase epochs (a hash, agent digest -> number of erases) and forgotten point ids (a sorted set by time).

Erase and forget are final, also for entries not yet indexed: ``erase`` removes every entry of the agent from the
stream (claimed or not, in any process), its pending count and its dead letters in ONE script, and moves the agent's
epoch on. Every entry carries the epoch it was stored under (field ``g``), so an indexer that had already claimed
or embedded an erased entry finds it stale (``stale``) and writes nothing, or deletes what it just wrote: see
``memory.qdrant.indexer.RecallIndexer`` for the race. ``forget`` does the same for single messages by their point ids.

Per agent, it also keeps the latest indexed message of each channel (time and point id), so indexing the next
one can mix in its vector without searching the collection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import ResponseError

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import Fence, RecallEntry
from memory.qdrant.indexing import recall_point_id
from memory.qdrant.search import from_rfc3339, to_rfc3339
from memory.redis import outbox_scripts
from memory.redis.client import AsyncRedis
from memory.redis.fencing import Fencing
from memory.redis.keys import RedisKeys

GROUP = "indexers"
FORGOTTEN_KEPT_SECONDS = 7 * 86400  # how long a forgotten point id is refused (an indexer stalled longer is not)
_SCAN = 500

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
    epoch: int = 0  # the agent's erase epoch when the entry was stored
    raw_stream: str = ""  # the stream key it was read from (the outbox, or the dead letters)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def agent_digest(agent: str) -> str:
    """The epochs hash's field for an agent: a digest, so the hash names no one."""
    return hashlib.sha256(agent.encode()).hexdigest()[:32]


class RecallOutbox:
    """Redis side of the outbox: put, claim, acknowledge, count pending, dead-letter."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._stream = keys.recall_outbox()
        self._pending = keys.recall_outbox_pending()
        self._dead = keys.recall_outbox_dead()
        self._epochs = keys.recall_outbox_epochs()
        self._forgotten = keys.recall_forgotten()
        self._keys = keys
        self._fencing = Fencing(redis, keys)
        self._ack = redis.register_script(_ACK)
        self._set_latest = redis.register_script(_SET_LATEST)
        self._put = redis.register_script(outbox_scripts.PUT)
        self._erase = redis.register_script(outbox_scripts.ERASE)
        self._forget = redis.register_script(outbox_scripts.FORGET)
        self._unset_latest = redis.register_script(outbox_scripts.UNSET_LATEST)

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def put(self, entries: Sequence[RecallEntry], *, fence: Fence | None = None) -> None:
        """Store entries for indexing, atomically with their agents' pending counts and current erase epochs.

        With a ``fence``, first check that it still holds the lock of each entry's agent (LockLost otherwise): the
        outbox is in another cluster slot than the lock, so the check is its own command (``memory.redis.fencing``).
        """
        if not entries:
            return
        for agent in {entry.agent for entry in entries} if fence is not None else ():
            await self._fencing.check(fence, agent)
        args: list[str] = []
        for entry in entries:
            args.extend((str(entry.agent), agent_digest(str(entry.agent)), entry_to_json(entry)))
        await self._put(keys=[self._stream, self._pending, self._epochs], args=args)

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

    @property
    def stream_key(self) -> str:
        return self._stream

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

    async def erase(self, agent: AgentKey) -> set[str]:
        """Remove every entry of ``agent`` (waiting, claimed by any indexer, or dead letters) and its channel
        pointers, and make every entry an indexer still holds stale; return the point ids the removed entries would
        have had (``unreadable:<stream id>`` for an entry that cannot be read)."""
        reply: list[Any] = await self._erase(
            keys=[self._stream, self._pending, self._dead, self._epochs],
            args=[GROUP, str(agent), agent_digest(str(agent))],
        )
        await self._redis.delete(self._keys.recall_latest(agent))
        removed: set[str] = set()
        for stream_id, raw in zip(reply[::2], reply[1::2], strict=True):
            try:
                removed.add(recall_point_id(entry_from_json(raw)))
            except (ValueError, KeyError, TypeError):
                removed.add(f"unreadable:{_text(stream_id)}")
        return removed

    async def entries_of(self, agent: AgentKey) -> list[RecallEntry]:
        """The agent's entries not indexed: waiting, being indexed, or dead letters (for forget to find them)."""
        return [item.entry for item in await self._items_of(agent) if item.entry is not None]

    async def forget(self, agent: AgentKey, point_ids: Sequence[str]) -> int:
        """Refuse these recall point ids to every indexer from now on, and remove the agent's entries that would
        become them (waiting, claimed, or dead letters); return the entries removed."""
        if not point_ids:
            return 0
        wanted = set(point_ids)
        live: list[str] = []
        dead: list[str] = []
        for item in await self._items_of(agent):
            if item.entry is not None and recall_point_id(item.entry) in wanted:
                (dead if item.raw_stream == self._dead else live).append(item.stream_id)
        now = time.time()
        args: list[str | float | int] = [GROUP, str(agent), now, now - FORGOTTEN_KEPT_SECONDS, len(wanted), *wanted]
        args.extend([len(live), *live, *dead])
        return int(await self._forget(keys=[self._stream, self._pending, self._dead, self._forgotten], args=args))

    async def stale(self, items: Sequence[OutboxItem]) -> set[str]:
        """Stream ids of ``items`` an indexer must not write: erased since they were stored, or forgotten."""
        if not items:
            return set()
        agents = sorted({item.agent for item in items})
        readable = [item for item in items if item.entry is not None]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._epochs, [agent_digest(agent) for agent in agents])
            if readable:
                pipe.zmscore(self._forgotten, [recall_point_id(i.entry) for i in readable if i.entry is not None])
            epochs_raw, *forgotten = await pipe.execute()
        epochs = {agent: int(raw or 0) for agent, raw in zip(agents, epochs_raw, strict=True)}
        gone = {item.stream_id for item in items if item.epoch < epochs[item.agent]}
        if readable:
            gone.update(item.stream_id for item, score in zip(readable, forgotten[0], strict=True) if score is not None)
        return gone

    async def unset_latest(self, agent: AgentKey, point_ids: Sequence[str]) -> None:
        """Drop the agent's channel pointers that point at these (deleted) points."""
        if point_ids:
            await self._unset_latest(keys=[self._keys.recall_latest(agent)], args=list(point_ids))

    async def _items_of(self, agent: AgentKey) -> list[OutboxItem]:
        found: list[OutboxItem] = []
        for key in (self._stream, self._dead):
            start = "-"
            while True:
                rows: Any = await self._redis.xrange(key, min=start, count=_SCAN)
                for sid, fields in rows:
                    item = self._item(sid, fields, key)
                    if item.agent == str(agent):
                        found.append(item)
                if len(rows) < _SCAN:
                    break
                start = "(" + _text(rows[-1][0])
        return found

    async def close_consumer(self, consumer: str) -> None:
        """Forget ``consumer`` if it has nothing pending (deleting one with pending entries would orphan them)."""
        try:
            mine = await self._redis.xpending_range(self._stream, GROUP, "-", "+", 1, consumername=consumer)
            if not mine:
                await self._redis.xgroup_delconsumer(self._stream, GROUP, consumer)
        except ResponseError:
            pass

    @staticmethod
    def _item(stream_id: bytes | str, fields: dict[Any, Any], stream: str = "") -> OutboxItem:
        values = {_text(k): _text(v) for k, v in fields.items()}
        raw = values.get("e", "")
        try:
            entry: RecallEntry | None = entry_from_json(raw)
        except (ValueError, KeyError, TypeError):
            entry = None
        epoch = int(values["g"]) if values.get("g", "").isdigit() else 0
        return OutboxItem(_text(stream_id), values.get("a", ""), entry, raw, epoch, stream)
