"""Per-agent memory counts kept in Redis: built once from Qdrant, then kept right by every write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import redis.asyncio as aioredis

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import ArchivalEntry
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.backend import VectorCollection
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.store import QdrantStore
from memory.redis.counts import Kind, MemoryCounts
from memory.redis.keys import RedisKeys
from tests.memory.helpers import ALICE, BOB, recall_entry

PUBLIC = Scope.PUBLIC


def note(agent: AgentKey, text: str) -> ArchivalEntry:
    return ArchivalEntry(agent=agent, text=text, timestamp=datetime(2024, 3, 1, tzinfo=UTC))


async def test_counts_are_built_once_from_what_qdrant_holds(
    store: QdrantStore,
    recall: QdrantRecallMemory,
    archival: QdrantArchivalMemory,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    # data written before counts existed (an upgrade), by stores without counts
    await recall.index([recall_entry(ALICE, f"message {i}", i) for i in range(3)] + [recall_entry(BOB, "hi", 0)])
    await archival.insert(note(ALICE, "Alice likes tea"))
    counts = MemoryCounts(redis_client, keys)
    collections: dict[Kind, VectorCollection] = {"recall": store.recall, "archival": store.archival}
    assert await counts.ensure_counted(collections)
    assert [await counts.get(ALICE, "recall"), await counts.get(ALICE, "archival")] == [3, 1]
    assert [await counts.get(BOB, "recall"), await counts.get(BOB, "archival")] == [1, 0]
    assert not await counts.ensure_counted(collections)


async def test_writes_keep_the_counts_right(
    store: QdrantStore, embedder: HashingEmbedder, redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    counts = MemoryCounts(redis_client, keys)
    recall = QdrantRecallMemory(store.recall, embedder, counts=counts)
    archival = QdrantArchivalMemory(store.archival, embedder, counts=counts)

    entries = [recall_entry(ALICE, f"message {i}", i, message_id=f"m{i}") for i in range(4)]
    await recall.add(entries)
    await recall.add(entries[:2])  # the same messages again (a redelivery): stored once, counted once
    assert await recall.count(ALICE) == 4
    page = await recall.search_date(ALICE, entries[0].timestamp, entries[0].timestamp, 0, entries[0].scope)
    assert await recall.delete(ALICE, [page.hits[0].id]) == 1
    assert await recall.count(ALICE) == 3
    assert await recall.count(BOB) == 0

    first = await archival.insert(note(ALICE, "Alice's cat is called Pixel"))
    await archival.insert(note(ALICE, "Alice's cat is called Pixel"))  # a duplicate is not stored
    second = await archival.insert(note(ALICE, "Alice works as a nurse in Porto"))
    third = await archival.insert(note(ALICE, "Alice plays the cello on Sundays"))
    assert await archival.count(ALICE) == 3
    await archival.merge(ALICE, first.id, [second.id], "Alice's cat is Pixel; she is a nurse in Porto")
    assert await archival.count(ALICE) == 2
    assert await archival.delete(ALICE, [third.id]) == 1
    assert await archival.count(ALICE) == 1

    await recall.erase(ALICE)
    await archival.erase(ALICE)
    assert [await recall.count(ALICE), await archival.count(ALICE)] == [0, 0]
    assert not await redis_client.exists(keys.memory_counts(ALICE))


async def test_a_channel_turn_counts_only_public_memory(
    store: QdrantStore, embedder: HashingEmbedder, redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    counts = MemoryCounts(redis_client, keys)
    recall = QdrantRecallMemory(store.recall, embedder, counts=counts)
    archival = QdrantArchivalMemory(store.archival, embedder, counts=counts)
    await recall.add([recall_entry(ALICE, "said in a DM", 0), recall_entry(ALICE, "said in #general", 1, scope=PUBLIC)])
    public_note = await archival.insert(replace(note(ALICE, "Alice leads the book club"), scope=PUBLIC))
    await archival.insert(note(ALICE, "Alice's diagnosis is private"))
    assert [await recall.count(ALICE, PUBLIC), await recall.count(ALICE)] == [1, 2]
    assert [await archival.count(ALICE, PUBLIC), await archival.count(ALICE)] == [1, 2]
    await archival.delete(ALICE, [public_note.id])
    assert [await archival.count(ALICE, PUBLIC), await archival.count(ALICE)] == [0, 1]
    # the same numbers when they are built from Qdrant instead
    await redis_client.delete(keys.memory_counts(ALICE), keys.memory_counts_ready())
    collections: dict[Kind, VectorCollection] = {"recall": store.recall, "archival": store.archival}
    assert await counts.ensure_counted(collections)
    assert [await recall.count(ALICE, PUBLIC), await recall.count(ALICE)] == [1, 2]
    assert [await archival.count(ALICE, PUBLIC), await archival.count(ALICE)] == [0, 1]
