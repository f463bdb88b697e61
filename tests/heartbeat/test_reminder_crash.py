"""A reminder is not lost when the process sending it dies: real `membot run` processes on the Slack stand-in.

The stand-in holds chat.postMessage unanswered, so the first process is killed (SIGKILL) in the middle of sending
the reminder. Its job is still in the store, firing again a lease later (3 seconds here), and the next `membot run`
delivers it: at worst a duplicate (the post the dying process made may have reached Slack), never a loss.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aioredis

from bot.app import open_app
from bot.core.events import Scope, utc_now
from bot.ops.reminders import ReminderBook, reminder_job_id
from bot.settings import Settings
from bot.stores import heartbeat_job_store, reminder_lease
from memory.redis.keys import RedisKeys
from memory.redis.store_identity import STORE_ID_FILE
from tests.heartbeat.conftest import RecordingAdapter
from tests.heartbeat.test_reminders import SAM, in_berlin, reminder_jobs, say
from tests.scenario import env_for, eventually
from tests.slack.harness import SIGNING_SECRET
from tests.standins.slack_api import SlackStandIn

LEASE_SECONDS = 3


async def membot_run(settings: Settings, cwd: Path) -> asyncio.subprocess.Process:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))}
    env = {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}
    return await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bot", "run"],
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_a_process_killed_while_sending_a_reminder_leaves_it_to_the_next_one(
    make_settings: Callable[..., Settings], tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    async with SlackStandIn() as slack:
        settings = make_settings(
            MEMBOT_REMINDER_LEASE_SECONDS=LEASE_SECONDS,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            SLACK_HTTP_HOST="127.0.0.1",
            SLACK_HTTP_PORT=0,
        )
        async with open_app(settings) as app:  # Sam last spoke in a Slack DM (D1) and asks for a reminder
            await in_berlin(app)
            await say(app, "hello")
            book = ReminderBook(
                heartbeat_job_store(settings), app.stores.activity, "UTC", lease=reminder_lease(settings)
            )
            reminder = await book.schedule(SAM, utc_now() + timedelta(seconds=4), "Feed the cat.", scope=Scope.PRIVATE)
        job_id = reminder_job_id(reminder)

        def posts() -> list[dict[str, object]]:
            return [c.params for c in slack.calls_to("chat.postMessage") if "Feed the cat." in str(c.params["text"])]

        slack.hold("chat.postMessage")  # Slack hangs: the first process is killed while it sends
        first = await membot_run(settings, tmp_path)
        await slack.wait_for(lambda: posts(), seconds=60)
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        assert [job.id for job in await reminder_jobs(settings)] == [job_id], "the reminder is still kept"

        slack.release()
        second = await membot_run(settings, tmp_path)
        try:
            await slack.wait_for(lambda: len(posts()) == 2, seconds=60)

            async def removed() -> bool:
                return await reminder_jobs(settings) == []

            await eventually(removed, within=30, what="the delivered reminder's job to be removed")
        finally:
            if second.returncode is None:
                second.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                _, stderr = await second.communicate()
        assert second.returncode == 0, stderr.decode()
        assert "Traceback" not in stderr.decode()
        assert [p["channel"] for p in posts()] == ["D1", "D1"]
        assert [p["text"] for p in posts()] == ["⏰ Reminder: Feed the cat."] * 2
        done = RedisKeys(settings.redis_prefix).job_run_guard(job_id, "done")
        assert await redis_client.exists(done), "marked delivered"
        async with open_app(settings) as app:  # kept in recall once, by the process that delivered it
            recalled = [r for r in await app.stores.recall.export(SAM) if "Feed the cat." in r["text"]]
        assert [r["role"] for r in recalled] == ["assistant"]


async def test_two_processes_without_a_crash_deliver_each_reminder_exactly_once(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with SlackStandIn() as slack:
        settings = make_settings(
            MEMBOT_REMINDER_LEASE_SECONDS=LEASE_SECONDS,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            SLACK_HTTP_HOST="127.0.0.1",
            SLACK_HTTP_PORT=0,
        )
        async with open_app(settings) as app:
            await in_berlin(app)
            await say(app, "hello")
            lease = reminder_lease(settings)
            book = ReminderBook(heartbeat_job_store(settings), app.stores.activity, "UTC", lease=lease)
            for i in range(5):
                due = utc_now() + timedelta(seconds=5 + i * 0.3)
                await book.schedule(SAM, due, f"Task {i}.", scope=Scope.PRIVATE)
        store_id = (settings.data_dir / "qdrant" / STORE_ID_FILE).read_text()
        processes = []
        for name in ("one", "two"):  # each its own embedded Qdrant (with the chat's store id), one Redis prefix
            data = tmp_path / name
            (data / "qdrant").mkdir(parents=True)
            (data / "qdrant" / STORE_ID_FILE).write_text(store_id)
            processes.append(await membot_run(settings.model_copy(update={"data_dir": data}), tmp_path))
        try:

            async def delivered() -> bool:
                return await reminder_jobs(settings) == []

            await eventually(delivered, within=60, what="every reminder to be delivered")
            await asyncio.sleep(LEASE_SECONDS * 2)  # past the lease: no job fires again
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                outputs = [(await process.communicate())[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    texts = sorted(str(call.params["text"]) for call in slack.calls_to("chat.postMessage"))
    assert texts == [f"⏰ Reminder: Task {i}." for i in range(5)]


async def test_a_delivered_reminders_job_written_back_by_another_scheduler_is_not_sent_again(
    make_settings: Callable[..., Settings],
) -> None:
    """APScheduler's store update is not atomic with a removal: a scheduler can write a delivered reminder's job
    back. Its next firing sees the delivered mark and only removes it."""
    settings = make_settings(MEMBOT_REMINDER_LEASE_SECONDS=1)
    slack = RecordingAdapter("slack")
    async with open_app(settings) as app:
        await in_berlin(app)
        await say(app, "hello")
        lease = reminder_lease(settings)
        book = ReminderBook(heartbeat_job_store(settings), app.stores.activity, "UTC", lease=lease)
        await app.start([slack])
        reminder = await book.schedule(SAM, utc_now() + timedelta(seconds=1), "Once.", scope=Scope.PRIVATE)

        async def no_jobs() -> bool:
            return await reminder_jobs(settings) == []

        await eventually(no_jobs, what="the reminder to be delivered")
        await book.store(reminder)  # written back, due again at once
        assert [job.id for job in await reminder_jobs(settings)] == [reminder_job_id(reminder)]
        await eventually(no_jobs, what="the written-back job to be removed")
        await asyncio.sleep(1.5)
    assert [text for _, text in slack.sent] == ["⏰ Reminder: Once."]
