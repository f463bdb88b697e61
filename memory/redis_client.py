"""The Redis client every store takes, and what it raises when Redis cannot be reached.

``bot.redis_url`` builds it from ``REDIS_URL``: one server or a Sentinel's master (``redis.asyncio.Redis``), or a
cluster (``redis.asyncio.RedisCluster``). The stores use only commands both accept, and keep the keys of each
script and transaction in one hash slot (``memory.keys``).
"""

from __future__ import annotations

from typing import TypeAlias

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

AsyncRedis: TypeAlias = aioredis.Redis | aioredis.RedisCluster
SyncRedis: TypeAlias = redis.Redis | redis.RedisCluster  # the heartbeat job store's (APScheduler 3 is synchronous)
ANY_REDIS_ERROR: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
"""Errors of an unreachable Redis (redis-py's cluster errors are not all ``RedisError``)."""
