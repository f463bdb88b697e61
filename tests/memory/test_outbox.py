"""The recall outbox and the background indexer: off the turn's path, and never losing a message.

Real Redis (the test's key prefix), embedded Qdrant, the hashing embedder; the outage test uses the OpenAI SDK
against the local stand-in's embeddings endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from bot.core.events import Scope
from memory.qdrant.embeddings import HashingEmbedder, OpenAIEmbedder
from memory.qdrant.indexer import RecallIndexer
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.store import QdrantStore
from memory.redis.keys import RedisKeys
from memory.redis.outbox import RecallOutbox
from tests.memory.helpers import ALICE, BOB, recall_entry
from tests.standins.llm_server import ScriptedLLMServer


@pytest.fixture
def outbox(redis_client: aioredis.Redis, keys: RedisKeys) -> RecallOutbox:
    return RecallOutbox(redis_client, keys)


@pytest.fixture
def queued_recall(store: QdrantStore, embedder: HashingEmbedder, outbox: RecallOutbox) -> QdrantRecallMemory:
    return QdrantRecallMemory(store.recall, embedder, outbox=outbox, catch_up_seconds=5)


@asynccontextmanager
async def started(
    outbox: RecallOutbox, recall: QdrantRecallMemory, *, exclusive: bool = True, lease_seconds: float = 60.0
) -> AsyncIterator[RecallIndexer]:
    """A running indexer (as a process starts one), closed at the end of the block."""
    running = RecallIndexer(
        outbox, recall.index, exclusive=exclusive, lease_seconds=lease_seconds, discard=recall.discard
    )
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def indexer(outbox: RecallOutbox, queued_recall: QdrantRecallMemory) -> AsyncIterator[RecallIndexer]:
    async with started(outbox, queued_recall) as running:
        yield running


async def indexed(store: QdrantStore) -> int:
    return await store.recall.count(())


async def outbox_is_empty(redis_client: aioredis.Redis, keys: RedisKeys) -> bool:
    return await redis_client.xlen(keys.recall_outbox()) == 0 and not await redis_client.hgetall(
        keys.recall_outbox_pending()
    )


async def test_messages_wait_in_redis_and_a_search_catches_up(
    queued_recall: QdrantRecallMemory,
    indexer: RecallIndexer,
    store: QdrantStore,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    await queued_recall.add([recall_entry(ALICE, "my sister Maya plays the cello", 0)])
    page = await queued_recall.search(ALICE, "cello", 0, Scope.PRIVATE)  # right after add: it waits
    assert [hit.text for hit in page.hits] == ["my sister Maya plays the cello"]
    assert await queued_recall.count(ALICE) == 1
    assert await outbox_is_empty(redis_client, keys)
    assert indexer.stats.indexed == 1


async def test_count_includes_messages_not_yet_indexed(
    queued_recall: QdrantRecallMemory, outbox: RecallOutbox, store: QdrantStore
) -> None:
    await queued_recall.add([recall_entry(ALICE, f"message {i}", i) for i in range(3)])
    assert await outbox.pending(ALICE) == 3
    assert await queued_recall.count(ALICE) == 3
    assert await queued_recall.count(BOB) == 0
    assert await indexed(store) == 0  # nothing indexed on the way


async def test_messages_stored_before_a_stop_are_indexed_by_the_next_process(
    queued_recall: QdrantRecallMemory,
    outbox: RecallOutbox,
    store: QdrantStore,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    await queued_recall.add([recall_entry(ALICE, "I moved to Lisbon in May", 0)])
    await queued_recall.add([recall_entry(BOB, "my dog is called Pixel", 1)])
    # the first process stopped here, before indexing; the next one starts its indexer
    async with started(outbox, queued_recall):
        page = await queued_recall.search(ALICE, "Lisbon", 0, Scope.PRIVATE)
        assert [hit.text for hit in page.hits] == ["I moved to Lisbon in May"]
        assert await outbox.wait_indexed(BOB, within=5)
    assert await indexed(store) == 2
    assert await outbox_is_empty(redis_client, keys)


@pytest.mark.parametrize("exclusive", [True, False])
async def test_entries_a_stopped_indexer_had_claimed_are_claimed_again(
    queued_recall: QdrantRecallMemory, outbox: RecallOutbox, store: QdrantStore, exclusive: bool
) -> None:
    await outbox.ensure_group()
    await queued_recall.add([recall_entry(ALICE, f"note {i}", i) for i in range(5)])
    claimed = await outbox.read("stopped-process", 10, None)  # claimed, then that process died
    assert len(claimed) == 5
    # exclusive (embedded Qdrant: no other process can be indexing) takes them at once; otherwise after the lease
    async with started(outbox, queued_recall, exclusive=exclusive, lease_seconds=0.3):
        assert await outbox.wait_indexed(ALICE, within=10)
    assert await indexed(store) == 5


async def test_an_entry_indexed_twice_is_stored_once(
    queued_recall: QdrantRecallMemory, outbox: RecallOutbox, store: QdrantStore
) -> None:
    entry = recall_entry(ALICE, "the same message", 0, message_id="m1")
    await queued_recall.index([entry])  # indexed, but the process stopped before acknowledging
    await queued_recall.add([entry])
    async with started(outbox, queued_recall):
        assert await outbox.wait_indexed(ALICE, within=5)
    assert await indexed(store) == 1


async def test_an_unreadable_entry_is_kept_aside_and_the_rest_indexed(
    queued_recall: QdrantRecallMemory,
    indexer: RecallIndexer,
    outbox: RecallOutbox,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    # an entry a put could not have made readable (say, by another membot version): counted, like every put
    await redis_client.xadd(keys.recall_outbox(), {"a": str(ALICE), "e": "{not json"})
    await redis_client.hincrby(keys.recall_outbox_pending(), str(ALICE), 1)
    await queued_recall.add([recall_entry(ALICE, "a readable message", 0)])
    page = await queued_recall.search(ALICE, "readable", 0, Scope.PRIVATE)
    assert [hit.text for hit in page.hits] == ["a readable message"]
    for _ in range(100):
        if await outbox.dead_letters() == 1:
            break
        await asyncio.sleep(0.05)
    assert await outbox.dead_letters() == 1
    assert await redis_client.xlen(keys.recall_outbox()) == 0
    assert len(await outbox.erase(ALICE)) == 1  # an erase removes the user's dead letters too
    assert await outbox.dead_letters() == 0


async def test_an_embeddings_outage_delays_indexing_but_loses_nothing(
    llm: ScriptedLLMServer,
    embedder: HashingEmbedder,
    store: QdrantStore,
    outbox: RecallOutbox,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    remote = OpenAIEmbedder(  # the size of the test collections (made for the hashing embedder)
        "text-embedding-3-small", api_key="test-key", base_url=llm.openai_base_url, dimensions=embedder.dimensions
    )
    recall = QdrantRecallMemory(store.recall, remote, outbox=outbox, catch_up_seconds=0.5)
    await recall.index([recall_entry(ALICE, "my bicycle is green", 0)])
    llm.embeddings_down = True
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, max_attempts=2, retry_seconds=0.05, lease_seconds=0.5)
    await indexer.start()
    try:
        await recall.add([recall_entry(ALICE, "remember the blue door", 0), recall_entry(ALICE, "and the key", 1)])
        assert await recall.count(ALICE) == 3  # stored, two of them waiting
        page = await recall.search(ALICE, "bicycle", 0, Scope.PRIVATE)  # the query cannot be embedded: words alone
        assert [hit.text for hit in page.hits] == ["my bicycle is green"]
        for _ in range(100):
            if indexer.stats.failures >= 3:
                break
            await asyncio.sleep(0.05)
        assert indexer.stats.failures >= 3
        assert await outbox.pending(ALICE) == 2
        assert await outbox.dead_letters() == 0  # an outage is not a reason to drop anything
        llm.embeddings_down = False
        assert await outbox.wait_indexed(ALICE, within=20)
    finally:
        await indexer.close()
        await remote.aclose()
    assert await indexed(store) == 3
    assert await outbox_is_empty(redis_client, keys)


async def test_close_indexes_what_is_waiting(
    queued_recall: QdrantRecallMemory, outbox: RecallOutbox, store: QdrantStore
) -> None:
    running = RecallIndexer(outbox, queued_recall.index, exclusive=True)
    await running.start()
    await queued_recall.add([recall_entry(ALICE, f"late message {i}", i) for i in range(20)])
    await running.close()
    assert await indexed(store) == 20
    assert await outbox.pending(ALICE) == 0


async def test_erase_takes_messages_still_in_the_outbox(
    queued_recall: QdrantRecallMemory,
    outbox: RecallOutbox,
    indexer: RecallIndexer,
    store: QdrantStore,
    redis_client: aioredis.Redis,
    keys: RedisKeys,
) -> None:
    await queued_recall.add([recall_entry(ALICE, "secret plans", 0), recall_entry(BOB, "bob's note", 0)])
    await queued_recall.erase(ALICE)
    assert await queued_recall.count(ALICE) == 0
    assert await outbox.wait_indexed(BOB, within=10)
    assert await indexed(store) == 1
    assert await outbox_is_empty(redis_client, keys)


async def test_a_pending_count_with_nothing_behind_it_does_not_hold_searches_forever(
    queued_recall: QdrantRecallMemory, outbox: RecallOutbox, redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    await redis_client.hset(keys.recall_outbox_pending(), str(ALICE), 3)  # e.g. the stream was lost with Redis data
    assert await outbox.wait_indexed(ALICE, within=0.2)
    assert await outbox.pending(ALICE) == 0
