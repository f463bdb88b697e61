"""``REDIS_URL`` → Redis clients: a single server, a Sentinel-managed master (failover), or a Redis Cluster.

- ``redis://[[user]:password@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path?db=0``: one server (redis-py's
  ``from_url``).
- ``redis+sentinel://[[user]:password@]host:26379,host2:26379/SERVICE[/db]``, ``rediss+sentinel://…``: ask the
  Sentinels which server is the master of ``SERVICE`` and follow it through failovers. The credentials are the
  master's; ``?sentinel_password=…`` authenticates to the Sentinels when they need it.
- ``redis+cluster://[[user]:password@]host:port[,host2:port…][/0]``, ``rediss+cluster://…`` (TLS): a Redis Cluster,
  reached through any of the nodes named (the others are discovered); database 0 only, as in every cluster.
  Every membot transaction and script keeps its keys in one hash slot (``memory.keys``), so all of them are legal.

Both the async client (memory stores, locks) and the synchronous client (the APScheduler job store) come from
here, so every part of membot talks to the same deployment, and both ride out Redis blips the same way
(``RedisResilience``): connection and timeout errors are retried with exponential backoff for a time budget, idle
pooled connections are checked with a PING before use (so one a restart broke is replaced before a command is
sent on it), and the read timeout outlasts the pauses membot promises to bridge (so a paused server delays a
command instead of having it sent twice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.retry
import redis.retry
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, ClusterPipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import Sentinel

__all__ = [
    "RedisResilience",
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
T = TypeVar("T")
RETRIED_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
"""Errors worth another attempt: the server could not be reached, or did not answer in time."""


@dataclass(frozen=True)
class RedisResilience:
    """How every Redis client membot builds rides out a restart, a failover or a pause.

    - ``retry_seconds``: connection and timeout errors are retried with exponential backoff (``backoff_base``
      doubling up to ``backoff_cap``) until this many seconds after the command started; then the error is
      raised (the runtime journals the message, ``memory.journal``). The budget is a deadline, not a count,
      because redis-py nests a connect retry inside each command's retry.
    - ``socket_timeout``: a command's reply is awaited this long. Longer than the pauses membot bridges: a paused
      server delays the reply rather than making membot send the command a second time.
    - ``connect_timeout``: a new connection gives up after this long (a refused one at once).
    - ``health_check_interval``: a pooled connection idle longer than this is checked with a PING first, so one
      that a restart broke is replaced before a command is written on it.

    What is retried, and why it does not double-write: every command (reads, writes, Lua scripts, MULTI/EXEC
    pipelines) is retried, but only on connection and timeout errors. A failed connect, a failed health-check
    PING and a failed write all mean the server never executed the command, so a retry is its first execution;
    a MULTI whose connection broke before EXEC is discarded by the server; EVALSHA after a restart gets NOSCRIPT
    and redis-py loads the script again. The one ambiguous case is a reply lost after the server executed the
    command: a paused server (SIGSTOP, a stalled host) would execute the first copy when it resumes, which is why
    the read timeout outlasts the pauses membot bridges (no timeout, no second copy); a server that dies in the
    microseconds between executing a command and sending its reply can see it twice (an INCR counted twice, a
    queue entry or audit entry twice). The lock's ``SET NX`` is safe: a replay finds its own lock and waits out
    the lease at worst.
    """

    retry_seconds: float = 10.0
    socket_timeout: float = 15.0
    connect_timeout: float = 3.0
    health_check_interval: float = 1.0
    backoff_base: float = 0.05
    backoff_cap: float = 1.0

    def retries(self) -> int:
        """How many backoff steps fill ``retry_seconds`` (the cluster client counts attempts, not time)."""
        total, count = 0.0, 0
        while total < self.retry_seconds:
            count += 1
            total += min(self.backoff_cap, self.backoff_base * 2**count)
        return count

    def brief(self) -> RedisResilience:
        """A shorter budget for a synchronous client called on the event loop (APScheduler's job store reads due
        jobs there; it retries a failed read itself a few seconds later), so an outage never freezes the loop
        for long."""
        return replace(
            self,
            retry_seconds=min(self.retry_seconds, 1.0),
            socket_timeout=min(self.socket_timeout, 3.0),
            connect_timeout=min(self.connect_timeout, 1.0),
        )

    def async_retry(self) -> redis.asyncio.retry.Retry:
        return _DeadlineAsyncRetry(self)

    def sync_retry(self) -> redis.retry.Retry:
        return _DeadlineSyncRetry(self)

    def client_options(self, *, sync: bool) -> dict[str, Any]:
        """Keyword arguments of a redis-py client (``redis.Redis``, a Sentinel's ``master_for``, a cluster)."""
        return {
            "retry": self.sync_retry() if sync else self.async_retry(),
            "retry_on_error": list(RETRIED_ERRORS),
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "health_check_interval": self.health_check_interval,
        }

    def sentinel_options(self) -> dict[str, Any]:
        """Options of the connections to the Sentinels themselves (asked again at every reconnect)."""
        return {"socket_timeout": self.connect_timeout, "socket_connect_timeout": self.connect_timeout}


class _DeadlineAsyncRetry(redis.asyncio.retry.Retry):
    """redis-py's ``Retry`` with exponential backoff that also stops ``retry_seconds`` after the call began."""

    def __init__(self, resilience: RedisResilience) -> None:
        backoff = ExponentialBackoff(cap=resilience.backoff_cap, base=resilience.backoff_base)
        super().__init__(backoff, resilience.retries(), RETRIED_ERRORS)  # type: ignore[arg-type]
        self._budget = resilience.retry_seconds

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        deadline = time.monotonic() + self._budget
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                await (fail(error, failures) if with_failure_count else fail(error))
                remaining = deadline - time.monotonic()
                if failures > self._retries or remaining <= 0:
                    raise error
                await asyncio.sleep(min(self._backoff.compute(failures), remaining))


class _DeadlineSyncRetry(redis.retry.Retry):
    """The synchronous twin of ``_DeadlineAsyncRetry`` (the APScheduler job store's client)."""

    def __init__(self, resilience: RedisResilience) -> None:
        backoff = ExponentialBackoff(cap=resilience.backoff_cap, base=resilience.backoff_base)
        super().__init__(backoff, resilience.retries(), RETRIED_ERRORS)
        self._budget = resilience.retry_seconds

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        deadline = time.monotonic() + self._budget
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                fail(error, failures) if with_failure_count else fail(error)
                remaining = deadline - time.monotonic()
                if failures > self._retries or remaining <= 0:
                    raise error
                time.sleep(min(self._backoff.compute(failures), remaining))


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
    one slot: the job store's two keys share a hash tag (``memory.keys.RedisKeys.scheduler_jobs``)."""

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
