"""The scheduler: Redis job store across restarts, several schedulers on one Redis, `membot run` and `jobs list`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import redis.asyncio as aioredis

from adapters.console import console_agent, console_message
from bot.app import App, open_app
from bot.core.events import AgentKey, ReplyAddress, utc_now
from bot.core.privacy import unmarked
from bot.ops.scheduler import HeartbeatScheduler
from bot.ops.serve import serve
from bot.runtime.heartbeat import HeartbeatConfig
from bot.settings import Settings
from bot.stores import heartbeat_job_store, list_jobs
from memory.redis.jobstore import open_job_store
from memory.redis.keys import RedisKeys
from memory.redis.store_identity import STORE_ID_FILE
from tests.heartbeat.conftest import RecordingAdapter, heartbeats_for, human_block, reflection_events
from tests.scenario import RecordingSink, env_for, eventually
from tests.standins.llm_server import ScriptedLLMServer

REFLECTED = "Reflection: "


def second_scheduler(app: App) -> HeartbeatScheduler:
    """Another scheduler on the same Redis job store, as a second membot process would have."""
    return HeartbeatScheduler(
        job_store=heartbeat_job_store(app.settings),
        activity=app.stores.activity,
        guard=app.stores.guard,
        config=HeartbeatConfig.from_settings(app.settings),
    )


async def reflections_of(app: App, agent: AgentKey) -> int:
    return sum(unmarked(line).startswith(REFLECTED) for line in (await human_block(app, agent)).splitlines())


async def test_jobs_survive_a_scheduler_restart(llm: ScriptedLLMServer, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(MEMBOT_REFLECT_AFTER_MINUTES=0.03)  # 1.8 s: time to stop before it fires
    dee = console_agent("dee")
    async with open_app(settings) as app:
        assert app.runtime is not None and app.scheduler is not None
        await app.start([])
        await app.runtime.handle(console_message("dee", "my name is Dee"), RecordingSink())
        await app.scheduler.shutdown()
    before = {job.id: job for job in await list_jobs(settings)}  # read from Redis alone, no scheduler running
    assert set(before) == {"reflect:console:dee", "consolidate:console:dee"}
    assert reflection_events(llm) == []

    async with open_app(settings) as app:  # a new process, as far as membot can tell
        await app.start([])
        scheduler = app.scheduler
        await eventually(lambda: reflections_of(app, dee), what="the stored reflection job to fire")
        assert list(scheduler.runs) == [("reflect:console:dee", before["reflect:console:dee"].next_run_time)]
        after = {job.id: job for job in await scheduler.jobs()}
        assert after["consolidate:console:dee"].next_run_time == before["consolidate:console:dee"].next_run_time
    assert len(reflection_events(llm)) == 1


async def test_two_schedulers_on_one_redis_run_each_firing_once(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    agents = [console_agent(f"user{i}") for i in range(6)]
    async with open_app(make_settings()) as app:
        assert app.runtime is not None
        await app.start([])
        first = app.scheduler
        second = second_scheduler(app)
        await second.start(heartbeats_for(app))
        try:
            for agent in agents:
                await app.runtime.handle(console_message(agent.user, f"my name is {agent.user}"), RecordingSink())

            async def all_reflected() -> bool:
                return all([await reflections_of(app, agent) for agent in agents])

            await eventually(all_reflected, what="every agent's reflection")
            # a second scheduler submits a firing the first one already ran (the race the guard exists for)
            store = open_job_store(app.settings.redis_url, *_store_keys(app))
            try:
                job = store.lookup_job("consolidate:console:user0")
            finally:
                store.shutdown()
            fire_time = job.next_run_time
            await asyncio.gather(first.run_firings(job, [fire_time]), second.run_firings(job, [fire_time]))
            await asyncio.sleep(0.5)
        finally:
            await second.shutdown()
        assert [await reflections_of(app, agent) for agent in agents] == [1] * len(agents)
        runs = [*first.runs, *second.runs]
        reflected = [run for run in runs if run[0].startswith("reflect:")]
        assert sorted(job for job, _ in reflected) == sorted(f"reflect:{agent}" for agent in agents)
        assert len(runs) == len(set(runs)), "a firing ran twice"
        assert sum(run == ("consolidate:console:user0", fire_time) for run in runs) == 1
    assert len(reflection_events(llm)) == len(agents)


def _store_keys(app: App) -> tuple[str, str]:
    keys = RedisKeys(app.settings.redis_prefix)
    return keys.scheduler_jobs(), keys.scheduler_run_times()


async def test_two_membot_run_processes_share_one_redis_and_reflect_once(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings], tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    settings = make_settings()
    agents = [console_agent(f"p{i}") for i in range(4)]
    async with open_app(settings) as app:  # conversations from a `membot chat`: no scheduler is running
        assert app.runtime is not None
        for agent in agents:
            await app.runtime.handle(console_message(agent.user, f"my name is {agent.user}"), RecordingSink())
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    env = {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}
    processes = []
    store_id = (settings.data_dir / "qdrant" / STORE_ID_FILE).read_text()
    for name in ("one", "two"):  # each its own embedded Qdrant; both on the same Redis prefix
        data = tmp_path / name
        (data / "qdrant").mkdir(parents=True)  # with the chat's store id: membot refuses two stores on one prefix
        (data / "qdrant" / STORE_ID_FILE).write_text(store_id)  # (memory/redis/store_identity.py); a server is shared
        processes.append(
            await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "bot", "run"],
                env={**env, "MEMBOT_DATA_DIR": str(data)},
                cwd=tmp_path,
                stdin=asyncio.subprocess.DEVNULL,  # as under a service manager: no console chat
                stderr=asyncio.subprocess.PIPE,
            )
        )
    keys = RedisKeys(settings.redis_prefix)
    logs: list[list[str]] = [[] for _ in processes]

    async def read(process: asyncio.subprocess.Process, lines: list[str]) -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            lines.append(line.decode())

    readers = [asyncio.create_task(read(process, lines)) for process, lines in zip(processes, logs, strict=True)]
    try:

        def both_serving() -> bool:  # the notice comes once SIGTERM is handled: a stop is then graceful
            return all("No chat platform is configured" in "".join(lines) for lines in logs)

        async def all_reflected() -> bool:
            blocks = [await redis_client.hget(keys.core_blocks(agent), "human") for agent in agents]
            return all(block and REFLECTED.encode() in block for block in blocks)

        await eventually(both_serving, within=90, what="both processes to start")  # safety nets, not timings
        await eventually(all_reflected, within=90, what="the reflections")
        await asyncio.sleep(0.5)  # let the slower process catch up and (try to) fire the same jobs
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            for process in processes:
                await process.wait()
            await asyncio.gather(*readers)
    outputs = ["".join(lines) for lines in logs]
    assert [process.returncode for process in processes] == [0, 0], outputs
    for output in outputs:
        assert "No chat platform is configured" in output and "DISCORD_TOKEN" in output
        assert "Traceback" not in output
    for agent in agents:
        block = (await redis_client.hget(keys.core_blocks(agent), "human") or b"").decode()
        assert block.count(REFLECTED) == 1, block
        guards = [key async for key in redis_client.scan_iter(match=keys.job_run_guard(f"reflect:{agent}", "*"))]
        assert len(guards) == 1
    assert len(reflection_events(llm)) == len(agents)


def test_jobs_list_and_proactive_commands(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings(MEMBOT_REFLECT_AFTER_MINUTES=30)

    async def converse() -> None:
        async with open_app(settings) as app:
            assert app.runtime is not None
            await app.start([])
            await app.runtime.handle(console_message("eve", "hello"), RecordingSink())

    asyncio.run(converse())
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    env = {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}

    def membot(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot", *args]
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)

    listed = membot("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = {job["id"]: job for job in json.loads(listed.stdout)}
    assert set(jobs) == {"reflect:console:eve", "consolidate:console:eve"}
    assert jobs["reflect:console:eve"]["kind"] == "reflect" and jobs["reflect:console:eve"]["agent"] == "console:eve"
    remaining = (datetime.fromisoformat(jobs["reflect:console:eve"]["next_run_time"]) - utc_now()).total_seconds()
    assert 25 * 60 < remaining <= 30 * 60
    table = membot("jobs", "list")
    assert "reflect:console:eve" in table.stdout and "consolidate" in table.stdout

    on = membot(
        "memory", "proactive", "console:eve", "on", "--quiet-hours", "23-07", "--timezone", "Europe/Berlin", "--json"
    )
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout) == {
        "agent": "console:eve",
        "enabled": True,
        "max_per_day": 2,
        "quiet_hours": "23:00-07:00",
        "timezone": "Europe/Berlin",
    }
    bad = membot("memory", "proactive", "console:eve", "on", "--timezone", "Mars/Olympus")
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr and "Traceback" not in bad.stderr


class FailingAdapter(RecordingAdapter):
    async def run(self) -> None:
        await asyncio.sleep(0.2)
        raise ConnectionError("gateway closed")


async def test_serve_runs_adapters_with_the_scheduler_and_stops_cleanly(make_settings: Callable[..., Settings]) -> None:
    notices: list[str] = []
    async with open_app(make_settings()) as app:
        assert app.scheduler is not None
        stop = asyncio.Event()
        slack = RecordingAdapter("slack")
        serving = asyncio.create_task(serve(app, notices.append, stop, adapters=[slack]))
        await eventually(lambda: app.scheduler is not None and app.scheduler.running, what="the scheduler")
        stop.set()  # what SIGINT/SIGTERM do
        assert await serving == 0
        assert not app.scheduler.running
        assert notices == ["membot is running on slack, with heartbeats. Ctrl-C stops it."]

        failing = await serve(app, notices.append, adapters=[FailingAdapter("discord")])
        assert failing == 1 and not app.scheduler.running
        assert "the discord adapter stopped (ConnectionError('gateway closed'))" in notices[-1]


async def test_serve_without_platforms_runs_the_console_chat_until_it_ends(
    make_settings: Callable[..., Settings],
) -> None:
    notices: list[str] = []
    chatted = asyncio.Event()

    class Console:
        platform = "console"

        async def run(self) -> None:
            assert app.scheduler is not None and app.scheduler.running, "heartbeats run beside the console chat"
            chatted.set()  # the user typed Ctrl-D right away

        async def send_direct(self, address: ReplyAddress, text: str) -> None:
            raise AssertionError("nothing to send")

    async with open_app(make_settings()) as app:
        assert await serve(app, notices.append, adapters=[], console=Console()) == 0
        assert chatted.is_set() and app.scheduler is not None and not app.scheduler.running
        assert notices == [], "no 'no platform configured' warning when the console chat runs"
