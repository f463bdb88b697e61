"""Reminders kept as jobs in the heartbeat job store (APScheduler's Redis job store every process shares).

A reminder is the job ``remind:<agent>:<id>`` (``remind:<agent>:<id>~<n>`` for its n-th delivery retry), stored by
the import path of ``remind_job`` below, with the agent key and id as arguments and the text, time zone, scope and
creation time as keyword arguments. Being in Redis, it survives restarts; ``HeartbeatScheduler`` fires it once
across processes (the firing guard) and hands it to ``bot.runtime.reminders.ReminderDelivery``.

Delivery is at least once, and once without a crash. The job's trigger fires at the due time and then again every
``lease`` (an interval trigger, which APScheduler keeps in the store after a firing, where a date trigger's job
would be removed before it runs): a firing claims the reminder until the next one. After the send the reminder is
marked delivered and its job removed. A process killed while sending leaves the job in the store, so the next
firing, a lease later, delivers it in another (or the restarted) process: a crash costs at worst a duplicate,
never the reminder. The delivered mark also stops a firing of a job that another scheduler wrote back after its
removal (APScheduler's store updates are not atomic with removals).

``ReminderBook`` is the model's and the admin commands' view (``bot.core.ports.Reminders``): it writes jobs straight
to the store, so reminders set in a `membot chat` without a running scheduler are kept too, and wakes this
process's scheduler (if any) so a reminder due soon is not left to the next poll.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.job import Job
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.events import AgentKey, Scope, utc_now
from bot.core.memory_types import Reminder, reminder_job_prefix
from bot.runtime.heartbeat_ports import ProactivePrefsStore
from bot.runtime.reminders import MISFIRE_GRACE

REMINDER_LEASE = timedelta(minutes=2)  # MEMBOT_REMINDER_LEASE_SECONDS: longer than any send takes


# The store keeps this by import path ("bot.ops.reminders:remind_job"): renaming it makes stored reminders unreadable.
async def remind_job(agent: str, reminder_id: str, **details: Any) -> None:
    """Job ``remind:<agent>:<id>``: deliver a reminder (run by ``HeartbeatScheduler.run_reminder``)."""
    raise RuntimeError(f"reminder jobs run only through a HeartbeatScheduler (remind {agent} {reminder_id})")


class ReminderJobs(Protocol):
    """The job store as reminders use it (``memory.redis.jobstore.SharedJobStore``); blocking calls."""

    def find(self, prefix: str) -> list[Any]: ...

    def put(self, job: Any, *, replace: bool = False) -> None: ...

    def delete(self, job_id: str) -> bool: ...


def reminder_job_id(reminder: Reminder) -> str:
    retry = f"~{reminder.attempt}" if reminder.attempt else ""
    return f"{reminder_job_prefix(reminder.agent)}{reminder.id}{retry}"


def delivery_id(reminder: Reminder) -> str:
    """What the delivered mark is kept under: the reminder's first job id, whichever retry delivers it."""
    return reminder_job_id(replace(reminder, attempt=0))


def reminder_job(reminder: Reminder, at: datetime | None = None, lease: timedelta = REMINDER_LEASE) -> Job:
    """The APScheduler job of a reminder, firing at its due time or ``at`` (a retry) and again every ``lease``
    until it is removed (delivered, dropped) or the delivery grace is over; built without a scheduler (``Job``
    needs one only to modify itself)."""
    job_id = reminder_job_id(reminder)
    fire_at = (at or reminder.due).astimezone(UTC)
    last = max(fire_at, reminder.due.astimezone(UTC) + MISFIRE_GRACE) + lease
    job = Job(
        None,
        id=job_id,
        name=job_id,
        func=remind_job,
        trigger=IntervalTrigger(seconds=lease.total_seconds(), start_date=fire_at, end_date=last, timezone=UTC),
        executor="default",
        args=[str(reminder.agent), reminder.id],
        kwargs={
            "text": reminder.text,
            "due": reminder.due.astimezone(UTC).isoformat(),
            "timezone": reminder.timezone,
            "scope": reminder.scope.value,
            "created_at": reminder.created_at.astimezone(UTC).isoformat(),
            "attempt": reminder.attempt,
        },
        misfire_grace_time=None,  # late firings always run: ReminderDelivery applies the grace (and says it is late)
        coalesce=True,
        max_instances=1,
    )
    job.next_run_time = fire_at
    return job


def reminder_of(agent: str, reminder_id: str, details: dict[str, Any]) -> Reminder:
    """The reminder a stored job's arguments describe."""
    return Reminder(
        id=reminder_id,
        agent=AgentKey.parse(agent),
        due=datetime.fromisoformat(details["due"]),
        text=str(details["text"]),
        timezone=str(details.get("timezone") or "UTC"),
        scope=Scope(details.get("scope", Scope.PRIVATE.value)),
        created_at=datetime.fromisoformat(details["created_at"]),
        attempt=int(details.get("attempt", 0)),
    )


class ReminderBook:
    """``bot.core.ports.Reminders`` on the shared job store; the user's time zone from their proactive setting."""

    def __init__(
        self,
        jobs: ReminderJobs,
        prefs: ProactivePrefsStore,
        default_timezone: str,
        wake: Callable[[], None] | None = None,
        *,
        lease: timedelta = REMINDER_LEASE,
    ) -> None:
        self._jobs = jobs
        self._prefs = prefs
        self._default_timezone = default_timezone
        self._lease = lease
        self.wake = wake  # called after a change, to wake this process's scheduler

    async def timezone(self, agent: AgentKey) -> str:
        return (await self._prefs.proactive_prefs(agent)).timezone or self._default_timezone

    async def schedule(self, agent: AgentKey, due: datetime, text: str, *, scope: Scope) -> Reminder:
        reminder = Reminder(
            id=secrets.token_hex(3),
            agent=agent,
            due=due.astimezone(UTC),
            text=text,
            timezone=await self.timezone(agent),
            scope=scope,
            created_at=utc_now(),
        )
        await self.store(reminder)
        return reminder

    async def store(self, reminder: Reminder, *, replace: bool = False) -> None:
        """Keep (or, with ``replace``, overwrite) the reminder's job."""
        await asyncio.to_thread(self._jobs.put, reminder_job(reminder, lease=self._lease), replace=replace)
        if self.wake is not None:
            self.wake()

    async def pending(self, agent: AgentKey) -> list[Reminder]:
        jobs = await asyncio.to_thread(self._jobs.find, reminder_job_prefix(agent))
        found = [
            reminder_of(str(job.args[0]), str(job.args[1]), job.kwargs)
            for job in jobs
            if len(job.args) == 2 and str(job.args[0]) == str(agent)
        ]
        return sorted(found, key=lambda reminder: (reminder.due, reminder.id))

    async def cancel(self, agent: AgentKey, reminder_id: str) -> bool:
        removed = False
        for reminder in await self.pending(agent):
            if reminder.id == reminder_id:
                removed = await asyncio.to_thread(self._jobs.delete, reminder_job_id(reminder)) or removed
        return removed
