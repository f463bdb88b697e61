"""The quarantine on a real Redis: an unreadable queue entry is moved aside once, and every process's cached queue
stays right."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from bot.llm.types import ChatMessage
from memory.redis.keys import RedisKeys
from memory.redis.quarantine import RedisQuarantine
from memory.redis.working import RedisWorkingMemory
from tests.memory.helpers import ALICE


async def test_an_unreadable_entry_is_moved_aside_once_and_cached_queues_follow(
    redis_client: aioredis.Redis, redis_url: str, keys: RedisKeys
) -> None:
    other_client = aioredis.Redis.from_url(redis_url)  # a second process with its own cache
    try:
        here, there = RedisWorkingMemory(redis_client, keys), RedisWorkingMemory(other_client, keys)
        await here.append(ALICE, [ChatMessage("user", "one"), ChatMessage("assistant", "two")])
        assert len(await here.messages(ALICE)) == len(await there.messages(ALICE)) == 2  # both cache the queue
        await redis_client.rpush(keys.queue(ALICE), b"{broken")
        await here.append(ALICE, [ChatMessage("user", "three")])
        assert [m.content for m in await here.messages(ALICE)] == ["one", "two", "three"]
        assert [m.content for m in await there.messages(ALICE)] == ["one", "two", "three"]
        await there.append(ALICE, [ChatMessage("assistant", "four")])
        assert [m.content for m in await here.messages(ALICE)] == ["one", "two", "three", "four"]
        quarantine = RedisQuarantine(redis_client, keys)
        [item] = await quarantine.export(ALICE)
        assert (item["store"], item["raw"], item["kind"]) == ("queue", "{broken", "quarantined")
        assert item["reason"].startswith("JSONDecodeError")
        [entry] = await redis_client.xrange(keys.audit(ALICE))
        fields = {k.decode(): v.decode() for k, v in entry[1].items()}
        assert fields["kind"] == "quarantine" and "broken" not in fields["detail"]
        assert json.loads(fields["detail"])["store"] == "queue"
    finally:
        await other_client.aclose()


async def test_an_item_changed_meanwhile_is_not_moved(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    quarantine = RedisQuarantine(redis_client, keys)
    await redis_client.set(keys.summary(ALICE), "fixed by someone else")
    moved = await quarantine.move(
        ALICE, store="summary", key=keys.summary(ALICE), where="string", raw=b"\xff", reason="UnicodeDecodeError"
    )
    assert not moved
    assert await redis_client.get(keys.summary(ALICE)) == b"fixed by someone else"
    assert await quarantine.count(ALICE) == 0
    assert await quarantine.erase(ALICE) == 0
