"""Redis state that platform adapters share across processes: rate limits, event dedupe, channel modes."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from memory.keys import RedisKeys

CHANNEL_MODES = ("mention", "always")


class RedisThrottle:
    """``Throttle`` on Redis: fixed one-minute windows (INCR + EXPIRE in one transaction) and SET NX dedupe."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def allow(self, subject: str, per_minute: int) -> bool:
        key = self._keys.rate_limit(subject, int(time.time() // 60))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count) <= per_minute

    async def first_time(self, platform: str, event_id: str, ttl_seconds: int = 86_400) -> bool:
        return bool(await self._redis.set(self._keys.inbound_seen(platform, event_id), 1, nx=True, ex=ttl_seconds))


class RedisChannelModes:
    """``ChannelModes`` on Redis: one hash per platform."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def get(self, platform: str, channel_id: str) -> str:
        value = await self._redis.hget(self._keys.channel_modes(platform), channel_id)
        return value.decode() if isinstance(value, bytes) else (value or "mention")

    async def set(self, platform: str, channel_id: str, mode: str) -> None:
        if mode not in CHANNEL_MODES:
            raise ValueError(f"unknown channel mode {mode!r}; use one of {', '.join(CHANNEL_MODES)}")
        if mode == "mention":
            await self._redis.hdel(self._keys.channel_modes(platform), channel_id)
        else:
            await self._redis.hset(self._keys.channel_modes(platform), channel_id, mode)
