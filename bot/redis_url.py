"""``REDIS_URL`` → Redis clients: a single server, or a Sentinel-managed master (high availability).

- ``redis://[[user]:password@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path?db=0``: one server (redis-py's
  ``from_url``).
- ``redis+sentinel://[[user]:password@]host:26379,host2:26379/SERVICE[/db]``, ``rediss+sentinel://…``: ask the
  Sentinels which server is the master of ``SERVICE`` and follow it through failovers. The credentials are the
  master's; ``?sentinel_password=…`` authenticates to the Sentinels when they need it.
- ``redis+cluster://host:port,…``: recognized and refused with the reason (``UnsupportedRedis``): the APScheduler
  job store and a few membot transactions touch keys in different cluster slots.

Both the async client (memory stores, locks) and the synchronous pool (the APScheduler job store) come from here,
so every part of membot follows the same master.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

__all__ = ["RedisTarget", "UnsupportedRedis", "async_client", "parse_redis_url", "redact", "sync_pool"]

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True, "sentinel": False}
CLUSTER_SCHEMES = {"redis+cluster", "rediss+cluster"}
DEFAULT_SENTINEL_PORT = 26379


class UnsupportedRedis(ValueError):
    """The URL names a Redis deployment membot cannot use; the message says why and what to use instead."""


@dataclass(frozen=True)
class RedisTarget:
    """What a ``REDIS_URL`` points at."""

    kind: Literal["server", "sentinel"]
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def parse_redis_url(url: str) -> RedisTarget:
    """Parse ``REDIS_URL``; raises ValueError (``UnsupportedRedis`` for a cluster) naming what is wrong."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in CLUSTER_SCHEMES:
        raise UnsupportedRedis(
            "Redis Cluster is not supported yet: the heartbeat job store (APScheduler) and some membot transactions "
            "use keys in different cluster slots. Use one Redis server, or Sentinel for failover "
            "(REDIS_URL=redis+sentinel://host:26379,host2:26379/mymaster)."
        )
    if scheme not in SENTINEL_SCHEMES:
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"REDIS_URL must start with redis://, rediss://, unix:// or redis+sentinel:// ({url!r})")
        return RedisTarget("server", url)
    netloc = parts.netloc
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item.strip())
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path:
        raise ValueError(
            "a Sentinel REDIS_URL names the Sentinels and the master's service: "
            "redis+sentinel://host:26379,host2:26379/mymaster[/db]"
        )
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError:
        raise ValueError(f"the database in REDIS_URL must be a number, not {path[1]!r}") from None
    query = parse_qs(parts.query)
    return RedisTarget(
        "sentinel",
        url,
        sentinels=sentinels,
        service=unquote(path[0]),
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=next(iter(query.get("sentinel_password", [])), None),
        ssl=SENTINEL_SCHEMES[scheme],
    )


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":") if ":" in item.strip() else (item.strip(), "", "")
    try:
        return host.strip("[]"), int(port) if port else DEFAULT_SENTINEL_PORT
    except ValueError:
        raise ValueError(f"invalid Sentinel address {item!r} in REDIS_URL: use host:port") from None


def _sentinel_options(target: RedisTarget) -> tuple[dict[str, object], dict[str, object]]:
    """(options of the master connections, options of the Sentinel connections)."""
    master: dict[str, object] = {"db": target.db, "ssl": target.ssl}
    if target.username:
        master["username"] = target.username
    if target.password:
        master["password"] = target.password
    sentinel: dict[str, object] = {"ssl": target.ssl}
    if target.sentinel_password:
        sentinel["password"] = target.sentinel_password
    return master, sentinel


class SentinelMaster(aioredis.Redis):
    """The client of the master a Sentinel names; closing it also closes the connections to the Sentinels."""

    sentinel_clients: list[aioredis.Redis]

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in getattr(self, "sentinel_clients", []):
            await sentinel.aclose()


def async_client(url: str) -> aioredis.Redis:
    """An asyncio client for ``REDIS_URL`` (not connected yet: the first command connects)."""
    target = parse_redis_url(url)
    if target.kind == "server":
        single: aioredis.Redis = aioredis.Redis.from_url(url)
        return single
    master, sentinel = _sentinel_options(target)
    sentinels = AsyncSentinel(list(target.sentinels), sentinel_kwargs=sentinel, **master)  # type: ignore[no-untyped-call]
    client: SentinelMaster = sentinels.master_for(target.service, redis_class=SentinelMaster)
    client.sentinel_clients = list(sentinels.sentinels)
    return client


def sync_pool(url: str) -> redis.ConnectionPool:
    """A synchronous connection pool for ``REDIS_URL`` (the APScheduler job store runs on it)."""
    target = parse_redis_url(url)
    if target.kind == "server":
        return redis.ConnectionPool.from_url(url)
    master, sentinel = _sentinel_options(target)
    sentinels = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel, **master)  # type: ignore[no-untyped-call]
    pool: redis.ConnectionPool = sentinels.master_for(target.service).connection_pool  # type: ignore[no-untyped-call]
    return pool


def redact(url: str) -> str:
    """``url`` without its passwords, for messages and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(f"{k}=***" if k.endswith("password") else f"{k}={v[0]}" for k, v in parse_qs(parts.query).items())
    return parts._replace(netloc=netloc, query=query).geturl()
