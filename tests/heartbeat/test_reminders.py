"""Reminders: the model's schedule_reminder in the user's time zone, kept as jobs in the Redis job store, delivered
once where the user last spoke (even with proactive messages off and inside quiet hours), across restarts and
several schedulers; late ones with a note; erase and export."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from adapters.console import console_agent, console_message
from bot.app import App, open_app
from bot.core.events import AgentKey, Scope, utc_now
from bot.core.memory_types import Reminder
from bot.core.tools import ToolFailure, parse_local_time
from bot.ops.reminders import ReminderBook, reminder_job_id
from bot.ops.scheduler import HeartbeatScheduler
from bot.runtime.heartbeat import HeartbeatConfig
from bot.runtime.reminders import LATE_AFTER, MISFIRE_GRACE, reminder_message
from bot.settings import Settings
from bot.stores import heartbeat_job_store, list_jobs
from memory.redis.keys import RedisKeys
from memory.redis.store_identity import STORE_ID_FILE
from tests.heartbeat.conftest import RecordingAdapter, heartbeats_for, message
from tests.heartbeat.test_proactive import quiet_hours_around_now
from tests.scenario import RecordingSink, env_for, eventually
from tests.standins.llm_server import ScriptedLLMServer

BERLIN = "Europe/Berlin"
SAM = AgentKey("slack", "T1", "sam")


def local_iso(moment: datetime, zone: str = BERLIN) -> str:
    """A naive local time, as the model writes it (seconds: these tests fire within seconds)."""
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat(timespec="seconds")


async def say(app: App, text: str, *, dm: bool = True) -> RecordingSink:
    assert app.runtime is not None
    sink = RecordingSink()
    await app.runtime.handle(message("slack", "sam", text, workspace="T1", dm=dm, channel="D1" if dm else "C1"), sink)
    return sink


def book(app: App) -> ReminderBook:
    return ReminderBook(heartbeat_job_store(app.settings), app.stores.activity, app.settings.timezone)


async def in_berlin(app: App) -> None:
    """Sam's time zone is Berlin; proactive messages stay off, and now is inside Sam's quiet hours."""
    assert app.services is not None and app.services.proactive is not None
    quiet = quiet_hours_around_now(utc_now().astimezone(ZoneInfo(BERLIN)))
    await app.services.proactive.set(SAM, False, timezone=BERLIN, quiet_hours=quiet)


async def reminder_jobs(settings: Settings) -> list[Any]:
    return [job for job in await list_jobs(settings) if job.kind == "remind"]


async def test_schedule_reminder_keeps_a_job_at_the_users_local_time(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    tomorrow_9 = (utc_now().astimezone(ZoneInfo(BERLIN)) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    async with open_app(settings) as app:
        await in_berlin(app)
        sink = await say(app, f"remind: {tomorrow_9.replace(tzinfo=None).isoformat()} Call mom.")
        assert sink.messages and sink.messages[-1].startswith("Set: Reminder "), sink.messages
        assert f"{tomorrow_9:%Y-%m-%d} 09:00 {BERLIN}" in sink.messages[-1]
        status = llm.requests[-1].status
        assert f"in the user's time zone, {BERLIN})" in status, "relative times are resolved from the local clock"
        [job] = await reminder_jobs(settings)
        assert job.agent == str(SAM) and job.next_run_time == tomorrow_9.astimezone(UTC)
        [pending] = await app.admin.reminders(SAM)
        assert pending.text == "Call mom." and pending.timezone == BERLIN and pending.scope is Scope.PRIVATE

        listed = await say(app, "reminders?")
        assert listed.messages[-1].startswith("Found: 1 pending reminder(s)") and "Call mom." in listed.messages[-1]
        cancelled = await say(app, f"cancel reminder {pending.id}")
        assert cancelled.messages[-1].startswith(f"Set: Cancelled reminder {pending.id}")
        assert await reminder_jobs(settings) == []


async def test_times_in_the_past_far_ahead_or_unreadable_are_refused_to_the_model(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    async with open_app(settings) as app:
        await in_berlin(app)
        past = await say(app, f"remind: {local_iso(utc_now() - timedelta(hours=1))} too late")
        assert "That failed" in past.messages[-1] and "is in the past: it is now" in past.messages[-1]
        far = await say(app, f"remind: {local_iso(utc_now() + timedelta(days=400))} next year")
        assert "That failed" in far.messages[-1] and "more than a year ahead" in far.messages[-1]
        vague = await say(app, "remind: tomorrow call mom")
        assert "That failed" in vague.messages[-1] and "ISO 8601" in vague.messages[-1]
        assert await reminder_jobs(settings) == []


async def test_a_due_reminder_reaches_where_the_user_last_spoke_once_even_with_proactive_off_in_quiet_hours(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    slack = RecordingAdapter("slack")
    async with open_app(settings) as app:
        await in_berlin(app)
        await app.start([slack])
        due = utc_now() + timedelta(seconds=2)
        await say(app, f"remind: {local_iso(due)} Stretch your legs.")
        assert len(await reminder_jobs(settings)) == 1
        await eventually(lambda: bool(slack.sent), what="the reminder to be delivered")
        [(address, text)] = slack.sent
        assert address.channel_id == "D1" and address.is_dm
        assert text == "⏰ Reminder: Stretch your legs."
        assert await reminder_jobs(settings) == []
        recalled = await app.stores.recall.export(SAM)
        assert any(r["role"] == "assistant" and r["text"] == text for r in recalled)

        async def noted() -> bool:  # the next turn knows what the user may be answering
            queue = await app.stores.working.messages(SAM)
            return any(m.content.startswith("[system] Reminder delivered") for m in queue)

        await eventually(noted, what="the reminder's note in the queue")
        [note] = [m for m in await app.stores.working.messages(SAM) if "Reminder delivered" in m.content]
        assert '"Stretch your legs."' in note.content and note.private
        answered = await say(app, "done, stretched")
        assert answered.messages == ["echo: done, stretched"]
        await asyncio.sleep(0.5)  # the poller runs several more times
        assert len(slack.sent) == 1


def second_scheduler(app: App) -> HeartbeatScheduler:
    return HeartbeatScheduler(
        job_store=heartbeat_job_store(app.settings),
        activity=app.stores.activity,
        guard=app.stores.guard,
        config=HeartbeatConfig.from_settings(app.settings),
    )


async def test_two_schedulers_on_one_redis_deliver_each_reminder_once(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    here, there = RecordingAdapter("slack"), RecordingAdapter("slack")
    async with open_app(settings) as app:
        await in_berlin(app)
        await app.start([here])
        first = app.scheduler
        second = second_scheduler(app)
        await second.start(heartbeats_for(app, [there]))
        try:
            soon = [utc_now() + timedelta(seconds=1.5 + i * 0.2) for i in range(4)]
            for i, due in enumerate(soon):
                await say(app, f"remind: {local_iso(due)} soon {i}")
            # and a firing both schedulers run at once (the race the firing guard exists for)
            later = await book(app).schedule(SAM, utc_now() + timedelta(hours=1), "later", scope=Scope.PRIVATE)
            store = heartbeat_job_store(settings).open()
            try:
                job = store.lookup_job(reminder_job_id(later))
            finally:
                store.shutdown()
            await asyncio.gather(
                first.run_firings(job, [job.next_run_time]), second.run_firings(job, [job.next_run_time])
            )
            await eventually(lambda: len(here.sent) + len(there.sent) >= 5, what="every reminder to be delivered")
            await asyncio.sleep(0.5)
        finally:
            await second.shutdown()
    texts = sorted(text for _, text in [*here.sent, *there.sent])
    assert texts == ["⏰ Reminder: later", *(f"⏰ Reminder: soon {i}" for i in range(4))]


async def test_a_reminder_survives_a_restart_and_one_missed_while_down_comes_late_with_a_note(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    async with open_app(settings) as app:  # a `membot chat`: no scheduler runs
        await in_berlin(app)
        await say(app, f"remind: {local_iso(utc_now() + timedelta(seconds=2))} Water the plants.")
        missed = Reminder(
            "missed1", SAM, utc_now() - timedelta(hours=2), "Take the pills.", BERLIN, Scope.PRIVATE, utc_now()
        )
        expired = Reminder(
            "expired", SAM, utc_now() - MISFIRE_GRACE - timedelta(hours=1), "Old.", BERLIN, Scope.PRIVATE, utc_now()
        )
        await book(app).store(missed)
        await book(app).store(expired)
    assert len(await reminder_jobs(settings)) == 3  # kept in Redis with no process running

    slack = RecordingAdapter("slack")
    async with open_app(settings) as app:  # a new process
        await app.start([slack])
        await eventually(lambda: len(slack.sent) >= 2, what="the stored reminders to fire")

        async def none_left() -> bool:
            return await reminder_jobs(settings) == []

        await eventually(none_left, what="every reminder job to be done")
        await asyncio.sleep(0.3)
        texts = [text for _, text in slack.sent]
    assert "⏰ Reminder: Water the plants." in texts
    [late] = [text for text in texts if "Take the pills." in text]
    due = missed.local_due()
    assert late == f"⏰ Reminder: Take the pills.\n(This was due at {due}; membot could not send it on time.)"
    assert not any("Old." in text for text in texts), "a reminder later than the grace is dropped"


async def test_an_unreachable_platform_keeps_the_reminder_for_a_retry(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    async with open_app(settings) as app:
        await in_berlin(app)
        await say(app, "hello")  # Sam last spoke on Slack, which this process is not connected to
        await app.start([])
        scheduler = app.scheduler
        reminder = await book(app).schedule(SAM, utc_now() + timedelta(seconds=1), "Retry me.", scope=Scope.PRIVATE)

        async def retried() -> bool:
            return [job.id for job in await reminder_jobs(settings)] == [f"{reminder_job_id(reminder)}~1"]

        await eventually(retried, what="the retry job")
        [pending] = await app.admin.reminders(SAM)
        assert pending.id == reminder.id and pending.attempt == 1 and pending.due == reminder.due
        assert (reminder_job_id(reminder), reminder.due) in scheduler.runs


async def test_a_private_reminder_is_not_shown_in_a_channel(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    slack = RecordingAdapter("slack")
    async with open_app(settings) as app:
        await in_berlin(app)
        await say(app, f"remind: {local_iso(utc_now() + timedelta(hours=1))} Private thing.")  # in a DM
        await say(app, "hello everyone", dm=False)  # then Sam speaks in a channel
        [reminder] = await app.admin.reminders(SAM)
        await app.admin.cancel_reminder(SAM, reminder.id)
        await book(app).store(Reminder("now1", SAM, utc_now(), "Private thing.", BERLIN, Scope.PRIVATE, utc_now()))
        await app.start([slack])
        await eventually(lambda: bool(slack.sent), what="the reminder")
    [(address, text)] = slack.sent
    assert address.channel_id == "C1" and "Private thing." not in text and "direct message" in text


async def test_erase_and_reset_remove_reminders_and_export_includes_them(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    async with open_app(settings) as app:
        await in_berlin(app)
        await say(app, f"remind: {local_iso(utc_now() + timedelta(days=1))} Call mom.")
        exported = await app.admin.export(SAM)
        [entry] = exported["reminders"]
        assert entry["text"] == "Call mom." and entry["timezone"] == BERLIN
        removed = await app.admin.reset(SAM, cause="test")
        assert removed["reminders"] == 1 and await reminder_jobs(settings) == []

        await say(app, f"remind: {local_iso(utc_now() + timedelta(days=1))} Call dad.")
        assert len(await app.admin.reminders(SAM)) == 1
        removed = await app.admin.erase(SAM, cause="test")
        assert removed["reminders"] == 1 and await app.admin.reminders(SAM) == []
        assert await reminder_jobs(settings) == []


def test_when_is_a_local_time_in_the_users_zone_unless_it_carries_an_offset() -> None:
    assert parse_local_time("2026-07-01T09:00", BERLIN) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # summer: +02:00
    assert parse_local_time("2026-12-01T09:00", BERLIN) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # winter: +01:00
    assert parse_local_time("2026-12-01T09:00-05:00", BERLIN) == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert parse_local_time("2026-12-01T09:00Z", BERLIN) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for vague in ("2026-12-01", "tomorrow at 9", "9:00"):
        with pytest.raises(ToolFailure, match="ISO 8601"):
            parse_local_time(vague, BERLIN)


def test_a_late_reminder_says_when_it_was_due() -> None:
    due = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    reminder = Reminder("r1", SAM, due, "Call mom.", BERLIN, Scope.PRIVATE, due - timedelta(days=1))
    assert reminder_message(reminder, due + LATE_AFTER) == "⏰ Reminder: Call mom."
    late = reminder_message(reminder, due + timedelta(hours=3))
    assert (
        late
        == "⏰ Reminder: Call mom.\n(This was due at 2026-12-01 09:00 Europe/Berlin; membot could not send it on time.)"
    )


async def test_two_membot_run_processes_fire_a_reminder_once(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings], tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    """Two `membot run` processes on one Redis prefix: one claims the firing. The user last spoke on the console,
    which neither process serves, so the one that fired it keeps it as a retry: exactly one firing, one retry."""
    settings = make_settings()
    async with open_app(settings) as app:  # a `membot chat`
        assert app.runtime is not None
        due = utc_now() + timedelta(seconds=3)
        await app.runtime.handle(console_message("sam", f"remind: {local_iso(due, 'UTC')} Once."), RecordingSink())
        [reminder] = await app.admin.reminders(console_agent("sam"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    env = {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}
    store_id = (settings.data_dir / "qdrant" / STORE_ID_FILE).read_text()
    processes = []
    for name in ("one", "two"):  # each its own embedded Qdrant (with the chat's store id), one Redis prefix
        data = tmp_path / name
        (data / "qdrant").mkdir(parents=True)
        (data / "qdrant" / STORE_ID_FILE).write_text(store_id)
        processes.append(
            await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "bot", "run"],
                env={**env, "MEMBOT_DATA_DIR": str(data)},
                cwd=tmp_path,
                stdin=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    first_id = reminder_job_id(reminder)
    try:

        async def retried() -> bool:
            return [job.id for job in await reminder_jobs(settings)] == [f"{first_id}~1"]

        await eventually(retried, within=60, what="one process to fire the reminder")
        await asyncio.sleep(1.0)  # the other process polls the store meanwhile
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            outputs = [(await process.communicate())[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert all("Traceback" not in output for output in outputs)
    keys = RedisKeys(settings.redis_prefix)
    guards = [key async for key in redis_client.scan_iter(match=keys.job_run_guard(first_id, "*"))]
    assert len(guards) == 1, guards
    assert [job.id for job in await reminder_jobs(settings)] == [f"{first_id}~1"]
