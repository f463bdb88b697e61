"""Heartbeat jobs an earlier membot stored (under ``bot.scheduler``) still load after the scheduler moved."""

from __future__ import annotations

from datetime import timedelta

import redis as syncredis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from bot.core.events import AgentKey, utc_now
from bot.ops import scheduler
from bot.stores import list_jobs
from memory.redis.jobstore import open_job_store
from memory.redis.keys import RedisKeys
from tests.conftest import REDIS_URL


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
