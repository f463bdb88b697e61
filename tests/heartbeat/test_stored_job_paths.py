"""Heartbeat jobs an earlier membot stored (under ``bot.scheduler``) still load after the scheduler moved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import redis as syncredis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from adapters.console import console_agent, console_message
from bot.app import open_app
from bot.core.events import AgentKey, utc_now
from bot.ops import scheduler
from bot.settings import Settings
from bot.stores import list_jobs
from memory.redis.jobstore import open_job_store
from memory.redis.keys import RedisKeys
from tests.conftest import REDIS_URL
from tests.heartbeat.conftest import reflection_events
from tests.scenario import RecordingSink, eventually
from tests.standins.llm_server import ScriptedLLMServer


async def test_a_job_stored_under_the_old_module_path_is_read_and_runs_the_same_function(make_settings) -> None:
    settings = make_settings()
    keys = RedisKeys(settings.redis_prefix)
    store = open_job_store(settings.redis_url, keys.scheduler_jobs(), keys.scheduler_run_times())
    older = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
    older.add_job(
        "bot.scheduler:reflect_job",  # what membot stored before the move
        DateTrigger(utc_now() + timedelta(hours=1)),
        args=["console:old"],
        id="reflect:console:old",
    )
    older.start(paused=True)  # writes the job to Redis
    older.shutdown(wait=False)

    assert [job.id for job in await list_jobs(settings)] == ["reflect:console:old"]
    reader = open_job_store(settings.redis_url, keys.scheduler_jobs(), keys.scheduler_run_times())
    try:
        assert reader.lookup_job("reflect:console:old").func is scheduler.reflect_job
    finally:
        reader.shutdown()
    client = syncredis.Redis.from_url(REDIS_URL)
    try:
        assert client.llen(keys.quarantine(AgentKey.parse("console:old"))) == 0  # nothing was set aside
    finally:
        client.close()


async def test_a_job_stored_under_the_old_module_path_runs_on_the_scheduler_that_fires_it(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    dee = console_agent("dee")
    async with open_app(make_settings(MEMBOT_REFLECT_AFTER_MINUTES=0.03)) as app:
        assert app.runtime is not None
        await app.start([])
        running = app.scheduler
        await app.runtime.handle(console_message("dee", "my name is Dee"), RecordingSink())
        keys = RedisKeys(app.settings.redis_prefix)
        store = open_job_store(app.settings.redis_url, keys.scheduler_jobs(), keys.scheduler_run_times())
        older = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
        older.add_job(  # the reflection as an earlier membot stored it
            "bot.scheduler:reflect_job",
            DateTrigger(utc_now() + timedelta(hours=1)),
            args=[str(dee)],
            id="reflect:console:dee",
            replace_existing=True,
        )
        older.start(paused=True)
        try:
            job = store.lookup_job("reflect:console:dee")
        finally:
            older.shutdown(wait=False)
        # what its executor does when the job is due: the reflection runs on this scheduler (too early here, so it
        # plans itself again under the current path, and that firing reflects)
        [event] = await running.run_firings(job, [job.next_run_time])
        assert event.exception is None
        assert list(running.runs)[-1] == ("reflect:console:dee", job.next_run_time)
        await eventually(lambda: len(reflection_events(llm)) == 1, what="the reflection the old job planned")


async def test_a_job_function_called_outside_a_scheduler_says_so() -> None:
    with pytest.raises(RuntimeError, match="only through a HeartbeatScheduler"):
        await scheduler.reflect_job("console:dee")
