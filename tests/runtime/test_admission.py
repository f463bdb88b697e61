"""The shared admission step on a real Redis throttle: new, duplicate, over the limit (told once a minute)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from bot.runtime.admission import RATE_LIMIT_NOTICE, Verdict, admit
from memory.redis.keys import RedisKeys
from memory.redis.platform_state import RedisThrottle
from tests.scenario import RecordingSink


@pytest.fixture
def throttle(redis_client: aioredis.Redis, key_prefix: str) -> RedisThrottle:
    return RedisThrottle(redis_client, RedisKeys(key_prefix))


async def _within_one_minute() -> None:
    """Start a burst early enough that it stays inside one fixed rate-limit window (a clock minute)."""
    seconds = time.time() % 60
    if seconds > 55:
        await asyncio.sleep(60.2 - seconds)


async def test_a_first_delivery_is_admitted_and_a_redelivery_under_any_of_its_ids_is_a_duplicate(
    throttle: RedisThrottle,
) -> None:
    sink = RecordingSink()
    assert await admit(throttle, "slack:T1:U1", ("ev-1", "ts-1"), 10, sink, "ts-1") is Verdict.ADMITTED
    assert await admit(throttle, "slack:T1:U1", ("ev-1", "ts-9"), 10, sink, "ts-9") is Verdict.DUPLICATE
    assert await admit(throttle, "slack:T1:U1", ("ev-2", "ts-1"), 10, sink, "ts-1") is Verdict.DUPLICATE, "twin"
    assert await admit(throttle, "slack:T1:U2", ("ev-1",), 10, sink, None) is Verdict.ADMITTED, "ids are per person"
    assert await admit(throttle, "slack:T1:U1", ("", "ts-2"), 10, sink, "ts-2") is Verdict.ADMITTED, "empty id skipped"
    assert sink.replies == [], "duplicates are dropped silently"


async def test_one_round_trip_leaves_every_key_with_a_ttl(
    throttle: RedisThrottle, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """check_in sends its commands without MULTI (the keys may sit on different cluster nodes); nothing it
    writes may stay forever, and a repeat leaves the count as it was."""
    await _within_one_minute()
    assert await throttle.check_in("slack:T1:U1", ["ev-1", "ts-1"], 10) == (True, True)
    assert await throttle.check_in("slack:T1:U1", ["ev-2", "ts-1"], 10) == (False, True)
    keys = sorted([key.decode() async for key in redis_client.scan_iter(match=f"{key_prefix}:*")])
    ttls = {key: await redis_client.ttl(key) for key in keys}
    assert len(keys) == 4 and all(0 < ttl <= 86_400 for ttl in ttls.values()), ttls
    counter = next(key for key in keys if ":rate:" in key)
    assert await redis_client.get(counter) == b"1" and ttls[counter] <= 120


async def test_over_the_limit_the_person_is_told_once_a_minute_and_duplicates_do_not_count(
    throttle: RedisThrottle,
) -> None:
    await _within_one_minute()
    sink = RecordingSink()
    ids = ["m0", "m0", "m1", "m2", "m3"]
    verdicts = [await admit(throttle, "discord:42", (i,), 2, sink, i) for i in ids]
    assert verdicts == [
        Verdict.ADMITTED,
        Verdict.DUPLICATE,
        Verdict.ADMITTED,
        Verdict.RATE_LIMITED,
        Verdict.RATE_LIMITED,
    ]
    assert [(r.text, r.kind, r.reply_to) for r in sink.replies] == [
        (RATE_LIMIT_NOTICE.format(limit=2), "notice", "m2")
    ], "one notice for the minute, not one per extra message"
    assert "at most 2 a minute" in sink.replies[0].text
    assert await admit(throttle, "discord:42", ("m0",), 2, sink, "m0") is Verdict.DUPLICATE
    other = RecordingSink()
    assert await admit(throttle, "discord:43", ("m9",), 2, other, "m9") is Verdict.ADMITTED, "limits are per person"
    assert other.replies == []
