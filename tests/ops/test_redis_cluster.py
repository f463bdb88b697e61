"""membot on a real Redis Cluster: three redis-server masters started here, ``REDIS_URL=redis+cluster://…``.

Turns, recall indexing and search, archival memory, heartbeats (APScheduler's job store in the cluster), history and
rollback, rate limits and proactive counters, then an erase checked key by key on every master.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from adapters.console import console_agent, console_message
from adapters.keys import person_of
from bot.app import App, open_app
from bot.core.events import AgentKey
from bot.core.memory_types import ProactivePrefs
from bot.ops.doctor import run_checks
from bot.stores import list_jobs
from memory.redis.keys import RedisKeys
from memory.redis.url import parse_redis_url
from tests.ops.helpers import LocalRedisCluster, redis_cluster
from tests.scenario import RecordingSink, eventually, settings_for
from tests.standins.llm_server import ScriptedLLMServer

SAM, ANN = console_agent("sam"), console_agent("ann")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


def dump(client: redis.Redis, key: bytes) -> str:
    kind = client.type(key).decode()
    readers = {
        "string": client.get,
        "hash": client.hgetall,
        "list": lambda k: client.lrange(k, 0, -1),
        "set": client.smembers,
        "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        "stream": client.xrange,
    }
    return repr(readers[kind](key)) if kind in readers else kind


def keys_by_master(cluster: LocalRedisCluster, prefix: str) -> dict[int, dict[str, str]]:
    """Every key under ``prefix`` with its contents, per master (each node's own SCAN: its slots only)."""
    found: dict[int, dict[str, str]] = {}
    for node in cluster.nodes:
        client = redis.Redis(port=node.port)
        try:
            found[node.port] = {key.decode(): dump(client, key) for key in client.scan_iter(f"{prefix}:*", 1000)}
        finally:
            client.close()
    return found


def traces(found: dict[int, dict[str, str]], needles: tuple[str, ...]) -> dict[str, str]:
    return {
        name: text
        for keys in found.values()
        for name, text in keys.items()
        if any(needle in name or needle in text for needle in needles)
    }


async def human(app: App, agent: AgentKey) -> str:
    return next(b.value for b in await app.stores.core.blocks(agent) if b.label == "human")


async def test_membot_runs_on_a_redis_cluster_and_erases_a_user_from_every_master(
    cluster: LocalRedisCluster, llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    url = f"redis+cluster://{cluster.addresses[0]},{cluster.addresses[1]}"  # the third node is discovered
    assert parse_redis_url(url).kind == "cluster"
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, REDIS_URL=url, MEMBOT_REFLECT_AFTER_MINUTES=0.005)
    keys = RedisKeys(key_prefix)
    sink = RecordingSink()
    async with open_app(settings) as app:
        assert app.runtime is not None
        await app.start([])
        scheduler = app.scheduler
        for agent, name in ((SAM, "Sam"), (ANN, "Ann")):
            for text in (f"my name is {name}", f"remember: {name}'s passport is X-{name}", f"I love teal-{name}"):
                await app.runtime.handle(console_message(agent.user, text), sink)
        await app.runtime.handle(console_message("sam", "search: teal"), sink)  # waits for the outbox's indexing
        assert "teal-Sam" in sink.messages[-1] and "teal-Ann" not in sink.messages[-1]
        await app.runtime.handle(console_message("sam", "recall: passport"), sink)
        assert "X-Sam" in sink.messages[-1]
        await app.runtime.handle(console_message("sam", "what is my name"), sink)
        assert sink.messages[-1] == "Your name is Sam."

        async def both_reflected() -> bool:  # a job in the cluster's job store fired, once, under its guard
            ran = {job for job, _ in scheduler.runs}
            blocks = [await human(app, agent) for agent in (SAM, ANN)]
            return {f"reflect:{SAM}", f"reflect:{ANN}"} <= ran and all("Reflection:" in block for block in blocks)

        await eventually(both_reflected, what="both users' reflections")
        jobs = {job.id for job in await list_jobs(settings)}
        assert {f"consolidate:{SAM}", f"consolidate:{ANN}"} <= jobs
        everything = keys_by_master(cluster, key_prefix)
        assert sum(1 for found in everything.values() if found) > 1, "the keys are spread over several masters"
        assert keys.scheduler_jobs() in {name for found in everything.values() for name in found}

        # history and rollback: back to the version before the reflection
        assert "Reflection:" in await human(app, SAM)
        named = next(
            version
            for version in await app.stores.core.versions(SAM)
            if "Name: Sam" in version.blocks["human"] and "Reflection:" not in version.blocks["human"]
        )
        result = await app.repair.rollback(SAM, named.version, cause="user:console:sam")
        assert await human(app, SAM) == named.blocks["human"]
        history = await app.repair.history(SAM, limit=5)
        assert history[0].entry.kind == "core_rollback" and history[0].entry.version == result.version

        # the rest of what an erase must find: rate-limit and dedupe flags, proactive choice and counter, a summary
        stores = app.stores
        assert await stores.throttle.allow(person_of(SAM), 5) and await stores.throttle.first_time(
            person_of(SAM), "ev-1"
        )
        await stores.activity.set_proactive_prefs(SAM, ProactivePrefs(enabled=True, quiet_hours="none"))
        assert await stores.activity.take_proactive_slot(SAM, "2030-01-01", 2)
        await stores.working.evict(SAM, 1, "Sam and membot talked about teal.", "Sam talked about teal.")
        exported = await app.admin.export(SAM)
        assert exported["heartbeats"]["proactive"]["enabled"] == "1" and exported["heartbeats"]["jobs"]

        removed = await app.admin.erase(SAM, cause="user:console:sam")
        assert removed["core"] == 2 and removed["audit_entries"] > 0
        assert (await stores.recall.count(SAM), await stores.archival.count(SAM)) == (0, 0)
        assert await stores.recall.count(ANN) > 0 and await stores.archival.count(ANN) > 0
        assert f"consolidate:{SAM}" not in {job.id for job in await scheduler.jobs()}

    left = traces(keys_by_master(cluster, key_prefix), (str(SAM), "Sam", "X-Sam"))
    audit_key = keys.audit(SAM)
    assert list(left) == [audit_key], f"only the record of the erase remains: {left}"
    assert "'erase'" in left[audit_key] or "b'erase'" in left[audit_key]
    assert traces(keys_by_master(cluster, key_prefix), (str(ANN), "X-Ann")), "Ann's memory is untouched"
    checks = {name: (ok, detail) for name, ok, detail in await run_checks(settings)}  # `membot doctor`
    assert checks["redis"][0] and "(Redis " in checks["redis"][1], checks
    assert checks["recall outbox"] == (True, "0 messages waiting to be indexed, 0 that could not be indexed")
