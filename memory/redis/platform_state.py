"""Redis state that platform adapters share across processes: rate limits, event dedupe, channel modes."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bot.core.ports import ChannelMode, CheckIn
from memory.redis.client import AsyncRedis
from memory.redis.keys import RedisKeys

SEEN_SECONDS = 86_400  # how long an event id is remembered
WINDOW_SECONDS = 120  # a one-minute window's counter outlives its minute


class RedisThrottle:
    """``Throttle`` on Redis: fixed one-minute windows (INCR + EXPIRE in one transaction) and SET NX dedupe.

    Keys name the person (``rate:<person>:<minute>``, ``seen:<person>:<event id>``), so an erase finds them with
    SCAN; they expire on their own after two minutes and a day. ``check_in`` sends its commands in one pipeline
    without MULTI (its keys may live on different cluster nodes): a window's counter is created with its TTL
    (SET NX EX) before it is incremented, so no counter is left without one.
    """

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def allow(self, person: str, per_minute: int) -> bool:
        key = self._keys.rate_limit(person, int(time.time() // 60))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS)
            count, _ = await pipe.execute()
        return int(count) <= per_minute

    async def first_time(self, person: str, event_id: str, ttl_seconds: int = SEEN_SECONDS) -> bool:
        return bool(await self._redis.set(self._keys.inbound_seen(person, event_id), 1, nx=True, ex=ttl_seconds))

    async def check_in(self, person: str, event_ids: Sequence[str], per_minute: int) -> CheckIn:
        key = self._keys.rate_limit(person, int(time.time() // 60))
        async with self._redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.set(self._keys.inbound_seen(person, event_id), 1, nx=True, ex=SEEN_SECONDS)
            pipe.set(key, 0, nx=True, ex=WINDOW_SECONDS)
            pipe.incr(key)
            *seen, _, count = await pipe.execute()
        if not all(seen):
            await self._redis.decr(key)  # a repeat is not counted (Slack's retries, a mention's twin event)
            return CheckIn(new=False, within_limit=True)
        return CheckIn(new=True, within_limit=int(count) <= per_minute)

    async def export(self, person: str) -> list[str]:
        return sorted(await scan_keys(self._redis, self._keys.person_patterns(person)))

    async def erase(self, person: str) -> int:
        return await delete_keys(self._redis, await scan_keys(self._redis, self._keys.person_patterns(person)))


async def scan_keys(redis: AsyncRedis, patterns: list[str]) -> list[str]:
    """Every key matching one of ``patterns`` (SCAN: incremental, never blocks Redis)."""
    found: set[str] = set()
    for pattern in patterns:
        async for key in redis.scan_iter(match=pattern, count=1000):
            found.add(key.decode() if isinstance(key, bytes) else str(key))
    return sorted(found)


async def delete_keys(redis: AsyncRedis, keys: list[str]) -> int:
    """Delete ``keys`` with one DEL per key, batched in one non-transactional pipeline; return how many existed.

    For keys of any hash slots that need no atomicity (flags and counters that expire on their own): a cluster
    refuses one DEL or MULTI across slots, while a plain pipeline is split per node.
    """
    if not keys:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.delete(key)
        return sum(int(deleted) for deleted in await pipe.execute())


class RedisChannelModes:
    """``ChannelModes`` on Redis: one hash per platform."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def get(self, platform: str, channel_id: str) -> str:
        value = await self._redis.hget(self._keys.channel_modes(platform), channel_id)
        return value.decode() if isinstance(value, bytes) else (value or "mention")

    async def set(self, platform: str, channel_id: str, mode: str) -> None:
        mode = ChannelMode.parse(mode)  # ValueError naming the modes
        if mode is ChannelMode.MENTION:  # the default: not stored
            await self._redis.hdel(self._keys.channel_modes(platform), channel_id)
        else:
            await self._redis.hset(self._keys.channel_modes(platform), channel_id, mode)
