"""Every Redis client membot builds carries the same resilience: retry with backoff on connection and timeout
errors within a time budget, health checks, connect and read timeouts (the job store's client a brief budget)."""

from __future__ import annotations

import time

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from memory.redis.retry import RedisResilience
from memory.redis.url import async_client, sync_client
from tests.faults.conftest import OwnedRedis

RESILIENCE = RedisResilience(retry_seconds=4, socket_timeout=12, connect_timeout=2, health_check_interval=1)


def _pool_options(kwargs: dict[str, object]) -> tuple[object, ...]:
    return (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["health_check_interval"])


async def test_server_and_sentinel_clients_retry_check_health_and_time_out() -> None:
    for url in ("redis://127.0.0.1:1/0", "redis+sentinel://127.0.0.1:1/mymaster"):
        client = async_client(url, RESILIENCE)
        try:
            options = client.connection_pool.connection_kwargs
            assert _pool_options(options) == (12, 2, 1), url
            assert options["retry"].get_retries() == RESILIENCE.retries()
            assert RedisConnectionError in options["retry_on_error"]
        finally:
            await client.aclose()
    synchronous = sync_client("redis://127.0.0.1:1/0", RESILIENCE.brief())
    try:
        assert _pool_options(synchronous.connection_pool.connection_kwargs) == (3.0, 1.0, 1)
    finally:
        synchronous.close()


async def test_cluster_clients_count_the_same_budget() -> None:
    client = async_client("redis+cluster://127.0.0.1:1", RESILIENCE)
    try:
        assert client.retry.get_retries() == RESILIENCE.retries()
        node = next(iter(client.nodes_manager.startup_nodes.values()))
        assert _pool_options(node.connection_kwargs) == (12, 2, 1)
    finally:
        await client.aclose()


def test_an_unreachable_redis_is_given_up_on_within_about_the_budget(owned_redis: OwnedRedis) -> None:
    client = sync_client(owned_redis.url, RedisResilience(retry_seconds=1.5))
    try:
        assert client.ping()
        owned_redis.stop()
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert 1.0 <= time.monotonic() - started <= 2 * 1.5 + 1, "about one budget"
    finally:
        client.close()


def test_retries_fill_the_budget_with_exponential_backoff() -> None:
    assert RedisResilience(retry_seconds=10).retries() == 13  # 0.1+0.2+0.4+0.8 then 1 s steps
    assert RedisResilience(retry_seconds=0).retries() == 0
