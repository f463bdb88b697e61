"""The working queue and summary on a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from bot.llm.types import ChatMessage, ToolCall
from memory.redis.keys import RedisKeys
from memory.redis.working import RedisWorkingMemory
from tests.memory.helpers import ALICE, BOB

CONVERSATION = [
    ChatMessage("user", "hi, I'm Alice"),
    ChatMessage("assistant", "greet her", (ToolCall("c1", "send_message", '{"message": "Hi Alice!"}'),)),
    ChatMessage("tool", '{"status": "OK"}', tool_call_id="c1", name="send_message"),
    ChatMessage("user", "I have a dog ✓"),
]


async def test_append_and_read_back_in_order(working: RedisWorkingMemory) -> None:
    assert await working.messages(ALICE) == []
    await working.append(ALICE, CONVERSATION[:2])
    await working.append(ALICE, CONVERSATION[2:])
    await working.append(ALICE, [])
    assert await working.messages(ALICE) == CONVERSATION
    assert await working.messages(BOB) == []


async def test_evict_drops_oldest_and_stores_summary(working: RedisWorkingMemory) -> None:
    await working.append(ALICE, CONVERSATION)
    assert await working.summary(ALICE) == ""
    await working.evict(ALICE, 3, "Alice introduced herself.", "")
    assert await working.messages(ALICE) == CONVERSATION[3:]
    assert await working.summary(ALICE) == "Alice introduced herself."
    await working.evict(ALICE, 10, "Alice introduced herself and has a dog.", "")
    assert await working.messages(ALICE) == []
    assert await working.summary(ALICE) == "Alice introduced herself and has a dog."
    with pytest.raises(ValueError):
        await working.evict(ALICE, -1, "x", "")


async def test_evict_is_atomic_for_readers(
    working: RedisWorkingMemory, redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    """A reader (taking a MULTI snapshot) never sees the queue trimmed without its summary, or the reverse."""
    await working.append(ALICE, [ChatMessage("user", f"m{i}") for i in range(200)])
    seen: list[tuple[int, int]] = []

    async def reader() -> None:
        for _ in range(300):
            async with redis_client.pipeline(transaction=True) as pipe:
                pipe.llen(keys.queue(ALICE))
                pipe.get(keys.summary(ALICE))
                length, summary = await pipe.execute()
            seen.append((length, int(summary.split()[1]) if summary else 0))
            await asyncio.sleep(0)

    async def evictor() -> None:
        for n in range(1, 21):
            await working.evict(ALICE, 10, f"summary {n}", "")
            await asyncio.sleep(0)

    await asyncio.gather(reader(), evictor())
    assert all(length == 200 - 10 * evictions for length, evictions in seen)
    assert len({evictions for _, evictions in seen}) > 1  # the reader did run during the evictions
    assert await working.summary(ALICE) == "summary 20"
    assert await working.messages(ALICE) == []


async def test_export_and_erase(working: RedisWorkingMemory) -> None:
    await working.append(ALICE, CONVERSATION)
    await working.evict(ALICE, 1, "earlier: greetings", "")
    await working.append(BOB, CONVERSATION[:1])
    exported = await working.export(ALICE)
    assert exported[0] == {"kind": "summary", "text": "earlier: greetings"}
    assert [item["role"] for item in exported[1:]] == ["assistant", "tool", "user"]
    assert exported[1]["tool_calls"][0]["name"] == "send_message"
    assert await working.erase(ALICE) == 4
    assert await working.messages(ALICE) == []
    assert await working.summary(ALICE) == ""
    assert await working.export(ALICE) == []
    assert await working.erase(ALICE) == 0
    assert len(await working.messages(BOB)) == 1


async def test_pressure_flag_lasts_until_the_next_eviction(working: RedisWorkingMemory) -> None:
    assert not await working.pressure_alerted(ALICE)
    await working.set_pressure_alerted(ALICE)
    assert await working.pressure_alerted(ALICE)
    assert not await working.pressure_alerted(BOB)
    await working.append(ALICE, CONVERSATION)
    await working.evict(ALICE, 2, "summary", "")
    assert not await working.pressure_alerted(ALICE)
    await working.set_pressure_alerted(ALICE)
    await working.erase(ALICE)
    assert not await working.pressure_alerted(ALICE)


async def test_a_cached_queue_follows_changes_made_by_another_process(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    """Each process keeps the parsed queue; appends, evictions and erases made elsewhere are all seen."""
    here, there = RedisWorkingMemory(redis_client, keys), RedisWorkingMemory(redis_client, keys)
    await there.append(ALICE, [ChatMessage("user", "one"), ChatMessage("user", "two")])
    assert [m.content for m in await here.messages(ALICE)] == ["one", "two"]
    await there.append(ALICE, [ChatMessage("user", "three")])
    assert [m.content for m in await here.messages(ALICE)] == ["one", "two", "three"]
    await there.evict(ALICE, 2, "summary", "")
    await there.append(ALICE, [ChatMessage("user", "four"), ChatMessage("user", "five")])
    assert [m.content for m in await here.messages(ALICE)] == ["three", "four", "five"]
    await there.erase(ALICE)
    await there.append(ALICE, [ChatMessage("user", "a"), ChatMessage("user", "b"), ChatMessage("user", "c")])
    await there.append(ALICE, [ChatMessage("user", "d")])
    assert [m.content for m in await here.messages(ALICE)] == ["a", "b", "c", "d"]
    returned = await here.messages(ALICE)
    returned.clear()  # a caller changing the list it got does not change the cache
    assert len(await here.messages(ALICE)) == 4


async def test_a_queue_written_before_generations_existed_is_read_whole(
    redis_client: aioredis.Redis, keys: RedisKeys, working: RedisWorkingMemory
) -> None:
    await redis_client.rpush(keys.queue(ALICE), ChatMessage("user", "old").to_json())
    assert [m.content for m in await working.messages(ALICE)] == ["old"]
    await working.append(ALICE, [ChatMessage("assistant", "new")])
    assert [m.content for m in await working.messages(ALICE)] == ["old", "new"]
