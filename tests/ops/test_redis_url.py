"""REDIS_URL forms: one server, a Sentinel-named master (a real redis-server in sentinel mode), a cluster's nodes.

A whole membot on a real Redis Cluster is in ``test_redis_cluster.py``."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from adapters.console import console_message
from bot.app import open_app
from bot.settings import ConfigError, load_settings
from bot.stores import list_jobs
from memory.redis.keys import RedisKeys
from memory.redis.url import RedisTarget, async_client, parse_redis_url, redact
from tests.ops.helpers import free_port, redis_server, wait_for_port
from tests.scenario import RecordingSink, settings_for
from tests.standins.llm_server import ScriptedLLMServer


def test_server_and_sentinel_urls_are_parsed() -> None:
    assert parse_redis_url("redis://:pw@10.0.0.5:6380/2") == RedisTarget("server", "redis://:pw@10.0.0.5:6380/2")
    target = parse_redis_url("rediss+sentinel://app:s3cret@s1:26379,s2,[::1]:26380/mymaster/3?sentinel_password=sp")
    assert target.kind == "sentinel" and target.ssl
    assert target.sentinels == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (target.service, target.db, target.username, target.password) == ("mymaster", 3, "app", "s3cret")
    assert target.sentinel_password == "sp"
    assert parse_redis_url("redis+sentinel://s1/mymaster").db == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s1:26379", "names the Sentinels and the master's service"),
        ("redis+sentinel://s1:x/mymaster", "invalid Sentinel address"),
        ("redis+sentinel://s1/mymaster/zero", "must be a number"),
        ("http://localhost:6379", "must start with redis://"),
    ],
)
def test_malformed_urls_are_refused_at_start(url: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_cluster_urls_name_the_startup_nodes() -> None:
    target = parse_redis_url("redis+cluster://n1:7000,n2,[::1]:7002")
    assert (target.kind, target.nodes, target.ssl, target.db) == (
        "cluster",
        (("n1", 7000), ("n2", 6379), ("::1", 7002)),
        False,
        0,
    )
    secure = parse_redis_url("rediss+cluster://app:s%40cret@n1:7000/0")
    assert (secure.ssl, secure.username, secure.password, secure.nodes) == (True, "app", "s@cret", (("n1", 7000),))
    assert parse_redis_url("redis+cluster://:pw@n1:7000/").password == "pw"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://", "names at least one node"),
        ("redis+cluster://n1:port", "invalid cluster node address"),
        ("redis+cluster://n1:7000/2", "database 0 only"),
    ],
)
def test_malformed_cluster_urls_are_refused_at_start(url: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ConfigError, match=message):
        load_settings()


async def test_cluster_urls_build_an_async_cluster_client() -> None:
    """It connects at its first command, so no cluster is needed here (the synchronous client of the job store
    connects at once: the end-to-end cluster test covers it)."""
    client = async_client("rediss+cluster://u:pw@n1:7000,n2:7001")
    try:
        assert isinstance(client, aioredis.RedisCluster)
        assert [(node.host, node.port) for node in client.nodes_manager.startup_nodes.values()] == [
            ("n1", 7000),
            ("n2", 7001),
        ]
    finally:
        await client.aclose()


def test_passwords_never_appear_in_messages() -> None:
    assert redact("redis://:hunter2@db:6379/0") == "redis://***@db:6379/0"
    redacted = redact("redis+sentinel://u:hunter2@s1:26379/m?sentinel_password=hunter3")
    assert "hunter" not in redacted and "s1:26379/m" in redacted


async def test_membot_follows_the_master_a_sentinel_names(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    with redis_server(tmp_path / "master") as master:
        sentinel_port = free_port()
        config = tmp_path / "sentinel.conf"  # Sentinel rewrites its config file: it must be writable
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor membot 127.0.0.1 {master.port} 1\n"
            "sentinel down-after-milliseconds membot 5000\n"
        )
        sentinel = subprocess.Popen(  # noqa: ASYNC220 (starts at once; waited for below)
            ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(sentinel_port)
            url = f"redis+sentinel://127.0.0.1:{sentinel_port}/membot/0"
            settings = settings_for(llm, "anthropic", key_prefix, data_dir, REDIS_URL=url)
            async with open_app(settings) as app:
                assert app.runtime is not None
                sink = RecordingSink()
                await app.runtime.handle(console_message("sam", "my name is Sam"), sink)
                await app.start([])  # the APScheduler job store on the Sentinel pool too
                await app.runtime.handle(console_message("sam", "hello"), sink)
                assert sink.messages == ["Got it, I'll remember that.", "echo: hello"]
            jobs = await list_jobs(settings)
            direct = aioredis.Redis.from_url(master.url)
            try:
                human = await direct.hget(f"{key_prefix}:core:{{console:sam}}", "human")
                scheduled = await direct.hkeys(RedisKeys(key_prefix).scheduler_jobs())
            finally:
                await direct.aclose()
        finally:
            sentinel.terminate()
            await asyncio.to_thread(sentinel.wait, 10)
    assert human is not None and b"Name: Sam" in human, "the memory is on the master the Sentinel named"
    assert {job.id for job in jobs} == {"reflect:console:sam", "consolidate:console:sam"}
    assert {key.decode() for key in scheduled} == {job.id for job in jobs}
