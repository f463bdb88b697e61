"""Erase and forget are final, also under faults: nothing still in the outbox, in dead letters or in an indexer's
hands (of this or another process) comes back into recall after the erase.

Real Redis (the test's key prefix), embedded Qdrant; the outage uses the OpenAI SDK against the stand-in's
embeddings endpoint answering 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from bot.core.events import AgentKey, Scope
from memory.qdrant.embeddings import HashingEmbedder, OpenAIEmbedder
from memory.qdrant.indexer import RecallIndexer
from memory.qdrant.indexing import recall_point_id
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.store import QdrantStore
from memory.redis.counts import MemoryCounts
from memory.redis.keys import RedisKeys
from memory.redis.outbox import GROUP, RecallOutbox, entry_to_json
from tests.memory.helpers import ALICE, BOB, recall_entry
from tests.scenario import eventually
from tests.standins.llm_server import ScriptedLLMServer


async def points_of(store: QdrantStore, agent: AgentKey) -> list[str]:
    records, _ = await store.recall.scroll((), limit=1000)
    return [str(r.payload.get("text")) for r in records if r.payload.get("agent") == str(agent)]


async def redis_traces(redis_client: aioredis.Redis, keys: RedisKeys, agent: AgentKey) -> list[str]:
    """Every key of the test's prefix that names ``agent`` or holds its key or its words."""
    found = []
    async for raw in redis_client.scan_iter(match=f"{keys.prefix}:*"):
        key = raw.decode()
        if str(agent) in key:
            found.append(key)
            continue
        kind = (await redis_client.type(key)).decode()
        if kind == "stream":
            content = str(await redis_client.xrange(key))
        elif kind == "hash":
            content = str(await redis_client.hgetall(key))
        else:
            continue
        if str(agent) in content or "4711" in content:
            found.append(key)
    return found


async def unacknowledged(redis_client: aioredis.Redis, keys: RedisKeys) -> int:
    return int((await redis_client.xpending(keys.recall_outbox(), GROUP))["pending"])


@pytest.fixture
def counts(redis_client: aioredis.Redis, keys: RedisKeys) -> MemoryCounts:
    return MemoryCounts(redis_client, keys)


@pytest.fixture
def outbox(redis_client: aioredis.Redis, keys: RedisKeys) -> RecallOutbox:
    return RecallOutbox(redis_client, keys)


async def test_an_erase_during_an_embeddings_outage_stays_erased_when_embeddings_recover(
    llm: ScriptedLLMServer,
    embedder: HashingEmbedder,
    store: QdrantStore,
    outbox: RecallOutbox,
    counts: MemoryCounts,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    remote = OpenAIEmbedder(
        "text-embedding-3-small", api_key="test-key", base_url=llm.openai_base_url, dimensions=embedder.dimensions
    )
    recall = QdrantRecallMemory(store.recall, remote, outbox=outbox, counts=counts, catch_up_seconds=0.5)
    await recall.index([recall_entry(ALICE, "my bicycle is green", 0), recall_entry(BOB, "bob likes tea", 0)])
    await redis_client.xadd(  # an earlier entry of Alice that could not be indexed
        keys.recall_outbox_dead(), {"a": str(ALICE), "e": entry_to_json(recall_entry(ALICE, "old 4711 note", 1))}
    )
    llm.embeddings_down = True
    indexer = RecallIndexer(
        outbox, recall.index, exclusive=True, max_attempts=2, retry_seconds=0.05, lease_seconds=0.5,
        discard=recall.discard,
    )  # fmt: skip
    await indexer.start()
    try:
        await recall.add([recall_entry(ALICE, "my bank PIN is 4711", 2), recall_entry(ALICE, "keep it safe", 3)])
        await eventually(lambda: indexer.stats.failures >= 2, what="the indexer to hold the batch and fail")
        assert await unacknowledged(redis_client, keys) == 2  # claimed by the indexer, in flight

        started = time.monotonic()
        await recall.erase(ALICE)
        assert time.monotonic() - started < 5  # nothing waits for an indexer that cannot index

        llm.embeddings_down = False
        await recall.add([recall_entry(BOB, "bob's new message", 4)])
        assert await outbox.wait_indexed(BOB, within=20)
        await eventually(
            lambda: _none_unacknowledged(redis_client, keys), what="the indexer to let go of the erased batch"
        )
        assert not (await recall.search(ALICE, "bank PIN 4711", 0, Scope.PRIVATE)).hits
    finally:
        await indexer.close()
        await remote.aclose()
    assert await points_of(store, ALICE) == []
    assert sorted(await points_of(store, BOB)) == ["bob likes tea", "bob's new message"]
    assert await redis_traces(redis_client, keys, ALICE) == []
    assert await recall.count(ALICE) == 0 and await recall.count(BOB) == 2


async def _none_unacknowledged(redis_client: aioredis.Redis, keys: RedisKeys) -> bool:
    return await unacknowledged(redis_client, keys) == 0


class GatedEmbedder:
    """The hashing embedder behind a gate: each call says it started, then waits until the test opens the gate
    (an embeddings service that is slow just while the test erases)."""

    def __init__(self, inner: HashingEmbedder) -> None:
        self._inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.entered.set()
        await self.gate.wait()
        return await self._inner.embed(texts)


async def test_an_indexer_that_claimed_and_was_embedding_the_batch_writes_nothing_of_it(
    embedder: HashingEmbedder,
    store: QdrantStore,
    outbox: RecallOutbox,
    counts: MemoryCounts,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    gated = GatedEmbedder(embedder)
    recall = QdrantRecallMemory(store.recall, gated, outbox=outbox, counts=counts)  # type: ignore[arg-type]
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, discard=recall.discard)
    await indexer.start()
    try:
        await recall.add([recall_entry(ALICE, "my bank PIN is 4711", 0)])
        await asyncio.wait_for(gated.entered.wait(), 20)  # claimed, checked, now embedding
        await recall.erase(ALICE)  # in the middle of the indexer's work
        gated.gate.set()  # it upserts, sees the erase, deletes what it wrote
        await eventually(lambda: _none_unacknowledged(redis_client, keys), what="the batch to be let go")
    finally:
        gated.gate.set()
        await indexer.close()
    assert await points_of(store, ALICE) == []
    assert await redis_traces(redis_client, keys, ALICE) == []


async def test_entries_a_stopped_process_had_claimed_are_erased_and_not_claimed_again(
    store: QdrantStore, embedder: HashingEmbedder, outbox: RecallOutbox, redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    recall = QdrantRecallMemory(store.recall, embedder, outbox=outbox)
    await outbox.ensure_group()
    await recall.add([recall_entry(ALICE, "my bank PIN is 4711", 0), recall_entry(BOB, "bob's note", 0)])
    claimed = await outbox.read("another-process", 10, None)  # that process stopped holding both
    assert len(claimed) == 2
    await recall.erase(ALICE)
    assert await unacknowledged(redis_client, keys) == 1  # Bob's entry is still claimed; Alice's is gone
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, lease_seconds=0.3, discard=recall.discard)
    await indexer.start()
    try:
        assert await outbox.wait_indexed(BOB, within=20)
    finally:
        await indexer.close()
    assert await points_of(store, ALICE) == [] and await points_of(store, BOB) == ["bob's note"]
    # and the stopped process, were it only slow, would find its copy stale before writing it
    assert {item.stream_id for item in claimed if item.agent == str(ALICE)} <= await outbox.stale(claimed)
    assert await redis_traces(redis_client, keys, ALICE) == []


async def test_a_forgotten_message_still_in_the_outbox_is_never_indexed(
    store: QdrantStore, embedder: HashingEmbedder, outbox: RecallOutbox, redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    recall = QdrantRecallMemory(store.recall, embedder, outbox=outbox)
    await outbox.ensure_group()
    secret, kept = recall_entry(ALICE, "my bank PIN is 4711", 0), recall_entry(ALICE, "I like tea", 1)
    await recall.add([secret, kept])
    claimed = await outbox.read("slow-process", 10, None)  # a slow indexer holds both
    waiting = await recall.waiting(ALICE)
    assert {hit.id for hit in waiting} == {recall_point_id(secret), recall_point_id(kept)}
    assert await recall.delete(ALICE, [recall_point_id(secret)]) == 1
    assert await outbox.pending(ALICE) == 1
    assert await outbox.stale(claimed) == {claimed[0].stream_id}  # only the forgotten one
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, discard=recall.discard)
    await indexer.start()
    try:
        assert await outbox.wait_indexed(ALICE, within=20)
    finally:
        await indexer.close()
    assert await points_of(store, ALICE) == ["I like tea"]
