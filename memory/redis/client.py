"""The Redis client every store takes, and what it raises when Redis cannot be reached.

``memory.redis.url`` builds it from ``REDIS_URL``: one server or a Sentinel's master (``redis.asyncio.Redis``), or a
cluster (``redis.asyncio.RedisCluster``). The stores use only commands both accept, and keep the keys of each
script and transaction in one hash slot (``memory.redis.keys``).
"""

from __future__ import annotations

from typing import TypeAlias

import redis
import redis.asyncio as aioredis
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

AsyncRedis: TypeAlias = aioredis.Redis | aioredis.RedisCluster
SyncRedis: TypeAlias = redis.Redis | redis.RedisCluster  # the heartbeat job store's (APScheduler 3 is synchronous)
ANY_REDIS_ERROR: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
"""Errors of an unreachable Redis (redis-py's cluster errors are not all ``RedisError``)."""
REDIS_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,  # also MasterNotFoundError (no Sentinel names a master) and a failed-over master
    RedisTimeoutError,
    ClusterDownError,
    ConnectionError,  # the builtin one: refused, reset, aborted
)
"""Errors that mean Redis is unreachable (its client's retries are spent), as opposed to a bad command or a bug."""


def is_redis_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) means Redis is unreachable."""
    return is_caused_by(exc, REDIS_OUTAGE_ERRORS)


def is_caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or an exception it was raised from (``__cause__``/``__context__``) is one of ``kinds``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
