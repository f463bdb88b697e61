"""The heartbeat scheduler: APScheduler's ``AsyncIOScheduler`` with a Redis job store that every process shares.

Jobs are ``reflect:<agent>`` (a date trigger, replaced on each user message, so it fires once the conversation has
been quiet for ``reflect_after``), ``consolidate:<agent>`` (an interval) and the reminders users asked for,
``remind:<agent>:<id>`` (at the due time, then every lease until delivered; ``bot/ops/reminders.py``). The store
keeps pickled references to the module-level job functions below and the agent key string, so schedules survive
restarts.

Several processes may run a scheduler on the same store. APScheduler 3 can then submit one firing in more than one
of them, so every firing first claims ``<prefix>:jobrun:<job id>:<fire time>`` (``SET NX PX``, through
``FiringGuard``) and runs only where the claim succeeds. Each process also polls the store, so jobs another process
added are seen without waiting for this one's own timer.

The stored job functions below are names, not code to call: this scheduler's executor runs each firing on the
scheduler instance that owns it (``HeartbeatScheduler.run_firings`` looks the function up among its own handlers),
so the jobs need no module-level state to find the live ``Heartbeats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.events import AgentKey, utc_now
from bot.core.memory_types import JobInfo, Reminder, heartbeat_job_id
from bot.ops.reminders import (
    REMINDER_LEASE,
    ReminderJobs,
    delivery_id,
    remind_job,
    reminder_job,
    reminder_job_id,
    reminder_of,
)
from bot.runtime.heartbeat import HeartbeatConfig, Heartbeats
from bot.runtime.heartbeat_ports import ActivitySchedule, FiringGuard
from bot.runtime.reminders import MISFIRE_GRACE, Delivery, ReminderDelivery

log = logging.getLogger(__name__)

GUARD_TTL_SECONDS = 86_400.0  # a firing is remembered for a day: far longer than schedulers can disagree
DELIVERED_TTL_SECONDS = (MISFIRE_GRACE + timedelta(days=1)).total_seconds()  # past the last firing of a reminder
RECENT_RUNS = 1000  # firings remembered in ``HeartbeatScheduler.runs`` (for logs and tests)
MAX_INSTANCES = 16  # firings of one job may overlap (a reflection waiting for a turn); the agent lock serializes them


# The store keeps these two by import path ("bot.ops.scheduler:reflect_job", and "bot.scheduler:reflect_job" for jobs
# stored before the move): renaming one makes APScheduler drop the stored jobs (``_reconcile`` plans them again at
# the next start). They name the job; ``HeartbeatScheduler.run_firings`` runs it on the scheduler that fired it.
async def reflect_job(agent: str) -> None:
    """Job ``reflect:<agent>``: reflect on the quiet conversation (run by ``HeartbeatScheduler.run_reflection``)."""
    raise RuntimeError(f"heartbeat jobs run only through a HeartbeatScheduler (reflect {agent})")


async def consolidate_job(agent: str) -> None:
    """Job ``consolidate:<agent>``: merge archival duplicates and condense full core blocks (run by
    ``HeartbeatScheduler.run_consolidation``)."""
    raise RuntimeError(f"heartbeat jobs run only through a HeartbeatScheduler (consolidate {agent})")


class JobStore(ReminderJobs, Protocol):
    """Where heartbeat jobs are kept, shared by every process (``memory.redis.jobstore.SharedJobStore``)."""

    def open(self) -> Any:
        """A new APScheduler job store on it (the scheduler shuts it down)."""
        ...

    def read(self) -> list[JobInfo]:
        """Every stored job, soonest first, without running a scheduler (blocking: call it in a thread)."""
        ...


class _GuardedExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """Runs each submitted firing as a task on the event loop, through ``HeartbeatScheduler.run_firings``."""

    def __init__(self, owner: HeartbeatScheduler) -> None:
        super().__init__()
        self._owner = owner

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        task = self._eventloop.create_task(self._owner.run_firings(job, run_times), name=f"heartbeat:{job.id}")
        self._pending_futures.add(task)
        task.add_done_callback(partial(self._finished, job.id))

    def _finished(self, job_id: str, task: asyncio.Task[list[JobExecutionEvent]]) -> None:
        self._pending_futures.discard(task)
        if task.cancelled():
            self._run_job_success(job_id, [])
        elif (exc := task.exception()) is not None:
            self._run_job_error(job_id, exc, exc.__traceback__)
        else:
            self._run_job_success(job_id, task.result())

    def tasks(self) -> list[asyncio.Future[Any]]:
        return list(self._pending_futures)


class HeartbeatScheduler:
    """Schedules each agent's heartbeats and runs every firing once across processes.

    Built unstarted by the composition root (the runtime calls ``conversation_active`` after each user message,
    which does nothing until ``start``); ``membot run`` starts it with the live ``Heartbeats``.
    """

    def __init__(
        self,
        *,
        job_store: JobStore,
        activity: ActivitySchedule,
        guard: FiringGuard,
        config: HeartbeatConfig,
        poll_seconds: float | None = None,
        reminder_lease: timedelta = REMINDER_LEASE,
    ) -> None:
        self._job_store = job_store
        self._activity = activity
        self._guard = guard
        self.config = config
        self._lease = reminder_lease
        shortest = min(config.reflect_after, config.consolidate_every).total_seconds()
        self._poll = poll_seconds if poll_seconds is not None else min(30.0, max(0.05, shortest / 4))
        self._scheduler: Any = None
        self._executor: _GuardedExecutor | None = None
        self._poller: asyncio.Task[None] | None = None
        self._heartbeats: Heartbeats | None = None
        self._consolidating: set[AgentKey] = set()
        self._handlers: dict[Any, Any] = {
            reflect_job: self._reflect_job,
            consolidate_job: self._consolidate_job,
            remind_job: self.run_reminder,
        }
        self.runs: deque[tuple[str, datetime]] = deque(maxlen=RECENT_RUNS)  # (job id, fire time) run here, newest last

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    async def check(self) -> str:
        """The health check of ``/healthz``: raises when the scheduler is not running."""
        if not self.running:
            raise RuntimeError("the heartbeat scheduler is not running")
        return "running"

    async def start(self, heartbeats: Heartbeats) -> None:
        """Start scheduling; (re)plan reflections and consolidation for agents with recent activity."""
        if self._scheduler is not None:
            raise RuntimeError("the heartbeat scheduler is already running")
        self._heartbeats = heartbeats
        self._executor = _GuardedExecutor(self)
        scheduler = AsyncIOScheduler(
            jobstores={"default": self._job_store.open()},
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": MAX_INSTANCES},
            timezone=UTC,
        )
        scheduler.start()
        self._scheduler = scheduler
        self._poller = asyncio.create_task(self._poll_store(), name="heartbeat-poll")
        await self._reconcile()
        log.info("heartbeat scheduler started", extra={"poll_seconds": self._poll})

    async def drain(self) -> None:
        """Start no more firings, and wait for the ones in progress (graceful shutdown bounds the wait)."""
        if self._scheduler is None:
            return
        self._scheduler.pause()
        tasks = self._executor.tasks() if self._executor else []
        await asyncio.gather(*tasks, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop scheduling; cancel firings in progress (they run again later: nothing is marked done)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        if self._poller is not None:
            self._poller.cancel()
        tasks = self._executor.tasks() if self._executor else []
        scheduler.shutdown(wait=False)  # AsyncIOScheduler defers the work to the event loop
        for _ in range(100):
            if not scheduler.running:
                break
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *([self._poller] if self._poller else []), return_exceptions=True)
        self._consolidating.clear()

    async def _poll_store(self) -> None:
        """Wake the scheduler regularly so it sees jobs that other processes added or changed."""
        while True:
            await asyncio.sleep(self._poll)
            if self._scheduler is not None:
                self._scheduler.wakeup()

    async def _reconcile(self) -> None:
        """Plan reflections missed while no scheduler ran (e.g. console chats) and consolidation of active agents.

        The reflection's fire time depends only on the stored activity, so processes starting together agree on it.
        """
        for agent in await self._activity.recent_agents(utc_now() - self.config.active_for):
            record = await self._activity.get(agent)
            if record.has_news and record.last_message_at is not None:
                await self.schedule_reflection(agent, record.last_message_at + self.config.reflect_after)
            await self.ensure_consolidation(agent)

    # --- planning ------------------------------------------------------------------------------------------
    async def conversation_active(self, agent: AgentKey, at: datetime) -> None:
        """After a user message at ``at``: reflect once the conversation has been quiet for ``reflect_after``.

        The fire time depends only on the message time, as in ``_reconcile``: every process plans the same firing.
        """
        if self._scheduler is None:
            return
        try:
            await self.schedule_reflection(agent, at + self.config.reflect_after)
            if agent not in self._consolidating:
                await self.ensure_consolidation(agent)
        except Exception:  # never fail a user's turn because a heartbeat could not be planned
            log.warning("could not schedule heartbeats", extra={"agent": str(agent)}, exc_info=True)

    async def schedule_reflection(self, agent: AgentKey, at: datetime) -> None:
        """Replace the agent's reflection job with one firing at ``at``."""
        await self._add(
            reflect_job, DateTrigger(at, timezone=UTC), agent, heartbeat_job_id("reflect", agent), replace=True
        )

    async def ensure_consolidation(self, agent: AgentKey) -> None:
        """Add the agent's periodic consolidation job unless it exists."""
        trigger = IntervalTrigger(seconds=self.config.consolidate_every.total_seconds(), timezone=UTC)
        with contextlib.suppress(ConflictingIdError):  # it exists: keep its schedule
            await self._add(consolidate_job, trigger, agent, heartbeat_job_id("consolidate", agent), replace=False)
        self._consolidating.add(agent)

    async def remove(self, job_id: str) -> None:
        await asyncio.to_thread(self._started().remove_job, job_id)

    async def _add(self, func: Any, trigger: Any, agent: AgentKey, job_id: str, *, replace: bool) -> None:
        scheduler = self._started()
        # the store is synchronous: keep its round trips off the event loop
        await asyncio.to_thread(
            scheduler.add_job, func, trigger, args=[str(agent)], id=job_id, name=job_id, replace_existing=replace
        )

    def _started(self) -> Any:
        if self._scheduler is None:
            raise RuntimeError("the heartbeat scheduler is not running")
        return self._scheduler

    async def jobs(self) -> list[JobInfo]:
        """Every stored job (of every process), soonest first."""
        return await asyncio.to_thread(self._job_store.read)

    # --- running -------------------------------------------------------------------------------------------
    async def run_firings(self, job: Job, run_times: list[datetime]) -> list[JobExecutionEvent]:
        """Run each firing of ``job`` that this process is first to claim; return APScheduler's events."""
        events: list[JobExecutionEvent] = []
        run = self._handlers.get(job.func, job.func)  # a stored job function names its handler here
        for run_time in run_times:
            if not await self._guard.claim(job.id, run_time, GUARD_TTL_SECONDS):
                log.info("firing already claimed elsewhere", extra={"job": job.id, "fire_time": str(run_time)})
                continue
            self.runs.append((job.id, run_time))
            try:
                await run(*job.args, **job.kwargs)
            except Exception as exc:
                log.exception("heartbeat job failed", extra={"job": job.id})
                trace = "".join(traceback.format_tb(exc.__traceback__))
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_ERROR, job.id, job._jobstore_alias, run_time, exception=exc, traceback=trace
                    )
                )
            else:
                events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_time))
        return events

    async def _reflect_job(self, agent: str) -> None:
        await self.run_reflection(AgentKey.parse(agent))

    async def _consolidate_job(self, agent: str) -> None:
        await self.run_consolidation(AgentKey.parse(agent))

    def _live(self) -> Heartbeats:
        if self._heartbeats is None:
            raise RuntimeError("the heartbeat scheduler was never started")
        return self._heartbeats

    async def run_reminder(self, agent: str, reminder_id: str, **details: Any) -> None:
        """Deliver a due reminder, then remove its job; when its platform cannot be reached now, keep it as a retry
        job. Until the job is removed it fires again a lease later (``bot/ops/reminders.py``): a process that dies
        while sending leaves the reminder to the next firing, wherever it runs."""
        heartbeats = self._live()
        reminder = reminder_of(agent, reminder_id, details)
        job_id = reminder_job_id(reminder)
        if await self._guard.finished(delivery_id(reminder)):  # delivered; its job was written back meanwhile
            log.info("reminder already delivered", extra={"agent": agent, "reminder": reminder_id})
            await asyncio.to_thread(self._job_store.delete, job_id)
            return
        runtime = heartbeats.runtime
        delivery = ReminderDelivery(
            heartbeats.activity, heartbeats.recall, heartbeats.adapters, runtime.note_sent, sent=self._delivered
        )
        outcome = await delivery.deliver(reminder)
        log.info("reminder", extra={"agent": agent, "reminder": reminder_id, "status": outcome.status})
        if outcome.status is Delivery.RETRY and outcome.retry_at is not None:
            retry = reminder_job(replace(reminder, attempt=reminder.attempt + 1), outcome.retry_at, self._lease)
            await asyncio.to_thread(self._job_store.put, retry, replace=True)
        await asyncio.to_thread(self._job_store.delete, job_id)

    async def _delivered(self, reminder: Reminder) -> None:
        await self._guard.finish(delivery_id(reminder), DELIVERED_TTL_SECONDS)

    def wakeup(self) -> None:
        """Look at the store now (a job due soon was added); nothing when not running."""
        if self._scheduler is not None:
            self._scheduler.wakeup()

    async def run_reflection(self, agent: AgentKey) -> None:
        outcome = await self._live().reflect(agent)
        log.info("reflection", extra={"agent": str(agent), "status": outcome.status, "messages": outcome.messages})
        if outcome.retry_at is not None and self.running:
            await self.schedule_reflection(agent, outcome.retry_at)

    async def run_consolidation(self, agent: AgentKey) -> None:
        outcome = await self._live().consolidate(agent)
        log.info("consolidation", extra={"agent": str(agent), "status": outcome.status, "merged": outcome.merged})
        if outcome.retire and self.running:
            await self.remove(heartbeat_job_id("consolidate", agent))
            self._consolidating.discard(agent)
