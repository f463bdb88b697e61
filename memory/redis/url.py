"""``REDIS_URL`` → Redis clients: a single server, a Sentinel-managed master (failover), or a Redis Cluster.

- ``redis://[[user]:password@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path?db=0``: one server (redis-py's
  ``from_url``).
- ``redis+sentinel://[[user]:password@]host:26379,host2:26379/SERVICE[/db]``, ``rediss+sentinel://…``: ask the
  Sentinels which server is the master of ``SERVICE`` and follow it through failovers. The credentials are the
  master's; ``?sentinel_password=…`` authenticates to the Sentinels when they need it.
- ``redis+cluster://[[user]:password@]host:port[,host2:port…][/0]``, ``rediss+cluster://…`` (TLS): a Redis Cluster,
  reached through any of the nodes named (the others are discovered); database 0 only, as in every cluster.
  Every membot transaction and script keeps its keys in one hash slot (``memory.redis.keys``), so all of them are legal.

Both the async client (memory stores, locks) and the synchronous client (the APScheduler job store) come from
here, so every part of membot talks to the same deployment, and both ride out Redis blips the same way
(``memory.redis.retry.RedisResilience``): connection and timeout errors are retried with exponential backoff for a
time budget, idle pooled connections are checked with a PING before use (so one a restart broke is replaced before
a command is sent on it), and the read timeout outlasts the pauses membot promises to bridge (so a paused server
delays a command instead of having it sent twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.cluster import ClusterNode, ClusterPipeline
from redis.sentinel import Sentinel

from memory.redis.retry import RedisResilience

__all__ = [
    "RedisTarget",
    "SyncRedis",
    "TransactionalRedisCluster",
    "async_client",
    "parse_redis_url",
    "redact",
    "sync_client",
]

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True, "sentinel": False}
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_CLUSTER_PORT = 6379

SyncRedis: TypeAlias = redis.Redis | redis.RedisCluster
"""The synchronous client of the APScheduler job store."""


@dataclass(frozen=True)
class RedisTarget:
    """What a ``REDIS_URL`` points at."""

    kind: Literal["server", "sentinel", "cluster"]
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False
    nodes: tuple[tuple[str, int], ...] = ()  # a cluster's startup nodes


def parse_redis_url(url: str) -> RedisTarget:
    """Parse ``REDIS_URL``; raises ValueError naming what is wrong."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in CLUSTER_SCHEMES:
        return _parse_cluster(url, parts.netloc, parts.path, CLUSTER_SCHEMES[scheme])
    if scheme not in SENTINEL_SCHEMES:
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// "
                f"({url!r})"
            )
        return RedisTarget("server", url)
    username, password, hosts = _credentials(parts.netloc)
    sentinels = tuple(_host_port(item, DEFAULT_SENTINEL_PORT, "Sentinel") for item in hosts.split(",") if item.strip())
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
        username=username,
        password=password,
        sentinel_password=next(iter(query.get("sentinel_password", [])), None),
        ssl=SENTINEL_SCHEMES[scheme],
    )


def _parse_cluster(url: str, netloc: str, path: str, ssl: bool) -> RedisTarget:
    username, password, hosts = _credentials(netloc)
    nodes = tuple(_host_port(item, DEFAULT_CLUSTER_PORT, "cluster node") for item in hosts.split(",") if item.strip())
    if not nodes:
        raise ValueError("a cluster REDIS_URL names at least one node: redis+cluster://host:6379[,host2:6379]")
    if path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has database 0 only; remove {path!r} from REDIS_URL")
    return RedisTarget("cluster", url, db=0, username=username, password=password, ssl=ssl, nodes=nodes)


def _credentials(netloc: str) -> tuple[str | None, str | None, str]:
    """(username, password, the hosts part) of a URL's network location."""
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    return unquote(username) or None, unquote(password) or None, hosts


def _host_port(item: str, default_port: int, what: str) -> tuple[str, int]:
    item = item.strip()
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    try:
        return host.strip("[]"), int(port) if port else default_port
    except ValueError:
        raise ValueError(f"invalid {what} address {item!r} in REDIS_URL: use host:port") from None


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


def _cluster_options(target: RedisTarget) -> dict[str, Any]:
    """Options of every cluster node connection (the same credentials and TLS on every node)."""
    options: dict[str, Any] = {"ssl": target.ssl}
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    return options


class SentinelMaster(aioredis.Redis):
    """The client of the master a Sentinel names; closing it also closes the connections to the Sentinels."""

    sentinel_clients: list[aioredis.Redis]

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in getattr(self, "sentinel_clients", []):
            await sentinel.aclose()


class TransactionalRedisCluster(redis.RedisCluster):
    """A synchronous cluster client whose ``pipeline()`` is a MULTI/EXEC transaction by default, as ``redis.Redis``'s
    is. APScheduler 3's ``RedisJobStore`` calls ``pipeline()`` (then ``multi()``) expecting one; redis-py's cluster
    pipeline is otherwise a plain batch, which refuses ``multi()``. A cluster transaction must keep its keys in
    one slot: the job store's two keys share a hash tag (``memory.redis.keys.RedisKeys.scheduler_jobs``)."""

    def pipeline(self, transaction: Any = True, shard_hint: Any = None) -> ClusterPipeline:
        pipe: ClusterPipeline = super().pipeline(transaction=transaction, shard_hint=shard_hint)  # type: ignore[no-untyped-call]
        return pipe


def async_client(url: str, resilience: RedisResilience | None = None) -> aioredis.Redis | aioredis.RedisCluster:
    """An asyncio client for ``REDIS_URL`` (not connected yet: the first command connects)."""
    target = parse_redis_url(url)
    options = (resilience or RedisResilience()).client_options(sync=False)
    if target.kind == "server":
        single: aioredis.Redis = aioredis.Redis.from_url(url, **options)
        return single
    if target.kind == "cluster":
        nodes = [AsyncClusterNode(host, port) for host, port in target.nodes]
        return aioredis.RedisCluster(startup_nodes=nodes, **_cluster_options(target), **options)
    master, sentinel = _sentinel_options(target)
    sentinel.update((resilience or RedisResilience()).sentinel_options())
    sentinels = AsyncSentinel(list(target.sentinels), sentinel_kwargs=sentinel, **master, **options)  # type: ignore[no-untyped-call]
    client: SentinelMaster = sentinels.master_for(target.service, redis_class=SentinelMaster)
    client.sentinel_clients = list(sentinels.sentinels)
    return client


def sync_client(url: str, resilience: RedisResilience | None = None) -> SyncRedis:
    """A synchronous client for ``REDIS_URL`` (the APScheduler job store runs on it); close it with ``close()``."""
    target = parse_redis_url(url)
    options = (resilience or RedisResilience()).client_options(sync=True)
    if target.kind == "server":
        return redis.Redis.from_url(url, **options)
    if target.kind == "cluster":
        nodes = [ClusterNode(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call]
        return TransactionalRedisCluster(startup_nodes=nodes, **_cluster_options(target), **options)
    master, sentinel = _sentinel_options(target)
    sentinel.update((resilience or RedisResilience()).sentinel_options())
    sentinels = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel, **master, **options)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinels.master_for(target.service)  # type: ignore[no-untyped-call]
    return client


def redact(url: str) -> str:
    """``url`` without its passwords, for messages and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(f"{k}=***" if k.endswith("password") else f"{k}={v[0]}" for k, v in parse_qs(parts.query).items())
    return parts._replace(netloc=netloc, query=query).geturl()
