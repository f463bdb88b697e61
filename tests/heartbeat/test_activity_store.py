"""The Redis side of heartbeats: activity records, proactive choices and counters, the once-per-firing guard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from bot.core.events import AgentKey, ReplyAddress, Scope
from bot.core.memory_types import ProactivePrefs
from memory.redis.activity import RedisActivityLog, RedisFiringGuard
from memory.redis.keys import RedisKeys

GUS = AgentKey("slack", "T1", "gus")
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


async def test_activity_is_counted_until_a_reflection_covers_it(redis_client: aioredis.Redis, key_prefix: str) -> None:
    log = RedisActivityLog(redis_client, RedisKeys(key_prefix))
    assert not (await log.get(GUS)).has_news
    channel = ReplyAddress("slack", "C9", "gus", "T1", "1700.1", is_dm=False)
    dm = ReplyAddress("slack", "D1", "gus", "T1")
    await log.record_message(GUS, dm, T0)
    await log.record_message(GUS, channel, T0 + timedelta(minutes=1))
    record = await log.get(GUS)
    assert record.has_news and record.messages_since == 2 and record.private_since
    assert record.address == channel and record.scope is Scope.PRIVATE  # a DM since the last reflection
    assert record.last_message_at == T0 + timedelta(minutes=1)
    assert await log.recent_agents(T0) == [GUS] and await log.recent_agents(T0 + timedelta(hours=1)) == []

    await log.mark_reflected(GUS, T0 + timedelta(minutes=20), seen=2)
    record = await log.get(GUS)
    assert not record.has_news and record.messages_since == 0 and not record.private_since
    await log.record_message(GUS, channel, T0 + timedelta(minutes=30))
    record = await log.get(GUS)
    assert record.has_news and record.messages_since == 1 and record.scope is Scope.PUBLIC

    await log.forget(GUS)
    assert await log.get(GUS) == type(record)() and await log.recent_agents(T0) == []


async def test_proactive_choice_and_daily_cap(redis_client: aioredis.Redis, key_prefix: str) -> None:
    log = RedisActivityLog(redis_client, RedisKeys(key_prefix))
    assert await log.proactive_prefs(GUS) == ProactivePrefs()
    chosen = ProactivePrefs(enabled=True, quiet_hours="23-07", timezone=None, max_per_day=3)
    await log.set_proactive_prefs(GUS, chosen)
    assert await log.proactive_prefs(GUS) == chosen

    taken = await asyncio.gather(*(log.take_proactive_slot(GUS, "2024-05-01", 2) for _ in range(6)))
    assert sorted(taken) == [False] * 4 + [True] * 2
    assert await log.proactive_sent(GUS, "2024-05-01") == 2 and await log.proactive_sent(GUS, "2024-05-02") == 0
    await log.return_proactive_slot(GUS, "2024-05-01")
    assert await log.take_proactive_slot(GUS, "2024-05-01", 2)
    key = RedisKeys(key_prefix).proactive_sent(GUS, "2024-05-01")
    assert 0 < await redis_client.ttl(key) <= 3 * 86_400

    await log.erase(GUS)
    assert await log.proactive_prefs(GUS) == ProactivePrefs()


async def test_each_firing_is_claimed_once(redis_client: aioredis.Redis, key_prefix: str) -> None:
    guards = [RedisFiringGuard(redis_client, RedisKeys(key_prefix)) for _ in range(3)]  # as in three processes
    fire = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    claims = await asyncio.gather(*(guard.claim("reflect:slack:T1:gus", fire, 60) for guard in guards))
    assert sorted(claims) == [False, False, True]
    assert await guards[0].claim("reflect:slack:T1:gus", fire + timedelta(seconds=1), 60)  # the next firing
    key = RedisKeys(key_prefix).job_run_guard("reflect:slack:T1:gus", "2024-05-01T12:00:00.250000Z")
    assert 0 < await redis_client.pttl(key) <= 60_000
