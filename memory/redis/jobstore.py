"""The heartbeat job store: APScheduler's ``RedisJobStore``, shared by every process's scheduler, on membot's Redis
client; and reading the stored jobs without a scheduler (``membot jobs list``).

Jobs are kept by the import path of their function (``bot.ops.scheduler:reflect_job``) and the agent key string.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.util import datetime_to_utc_timestamp

from bot.core.memory_types import JobInfo
from memory.redis.retry import RedisResilience
from memory.redis.url import SyncRedis, sync_client

log = logging.getLogger(__name__)

# Keeps a job that cannot be read (client, job id, stored state, reason); False when it could not (then it is only
# removed, as APScheduler does). The composition root passes ``memory.redis.quarantine.set_aside_job``.
UnreadableJob = Callable[[SyncRedis, str, bytes, str], bool]


class TolerantRedisJobStore(RedisJobStore):  # type: ignore[misc]
    """A ``RedisJobStore`` shared by several schedulers. A job another process removed meanwhile is skipped: reading
    it is not a failed restore, and removing or updating it is not an error (in APScheduler 3 that error would
    escape ``_process_jobs`` and stop this scheduler's timer).

    It runs on the client it is given (``memory.redis.url.sync_client``: a server, a Sentinel's master, or a cluster)
    rather than the ``redis.Redis`` APScheduler builds from connection arguments, which cannot reach a cluster. Its
    transactions touch only ``jobs_key`` and ``run_times_key``, which must then share a hash tag.
    """

    def __init__(
        self, client: SyncRedis, jobs_key: str, run_times_key: str, set_aside: UnreadableJob | None = None
    ) -> None:
        super().__init__(jobs_key=jobs_key, run_times_key=run_times_key)
        self.redis: SyncRedis = client  # replaces the unconnected client the base class built
        self._set_aside = set_aside

    def _reconstitute_jobs(self, job_states: list[tuple[Any, Any]]) -> list[Job]:
        """The jobs that can be read; one that cannot is set aside (quarantined with its agent), then removed."""
        jobs: list[Job] = []
        for job_id, state in job_states:
            try:
                jobs.append(self._reconstitute_job(state))
            except Exception as exc:
                name = job_id.decode("utf-8", "replace") if isinstance(job_id, bytes) else str(job_id)
                reason = f"{type(exc).__name__}: {exc}"[:200]
                raw = state if isinstance(state, bytes) else str(state).encode()
                kept = self._set_aside is not None and self._set_aside(self.redis, name, raw, reason)
                log.warning(
                    "heartbeat job %s could not be read (%s); %s", name, reason, "quarantined" if kept else "removed"
                )
                with self.redis.pipeline() as pipe:
                    pipe.hdel(self.jobs_key, job_id)
                    pipe.zrem(self.run_times_key, job_id)
                    pipe.execute()
        return jobs

    def shutdown(self) -> None:
        self.redis.close()

    def get_due_jobs(self, now: datetime) -> list[Job]:
        job_ids = self.redis.zrangebyscore(self.run_times_key, 0, datetime_to_utc_timestamp(now))
        if not job_ids:
            return []
        states = self.redis.hmget(self.jobs_key, *job_ids)
        return list(self._reconstitute_jobs([(i, s) for i, s in zip(job_ids, states, strict=True) if s is not None]))

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.debug("job %s was already removed (by another process)", job_id)

    def update_job(self, job: Job) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.debug("job %s was removed (by another process) before it could be updated", job.id)


def open_job_store(
    redis_url: str,
    jobs_key: str,
    run_times_key: str,
    set_aside: UnreadableJob | None = None,
    resilience: RedisResilience | None = None,
) -> TolerantRedisJobStore:
    """The job store on its own synchronous Redis client (APScheduler 3 stores are synchronous). APScheduler reads
    due jobs on the event loop, so the client gets the brief retry budget (``RedisResilience.brief``)."""
    client = sync_client(redis_url, (resilience or RedisResilience()).brief())
    return TolerantRedisJobStore(client, jobs_key, run_times_key, set_aside)


def read_jobs(
    redis_url: str,
    jobs_key: str,
    run_times_key: str,
    set_aside: UnreadableJob | None = None,
    resilience: RedisResilience | None = None,
) -> list[JobInfo]:
    """Every stored job, soonest first, without running a scheduler (blocking: call it in a thread)."""
    store = open_job_store(redis_url, jobs_key, run_times_key, set_aside, resilience)
    try:
        return [JobInfo.of(job) for job in store.get_all_jobs()]
    finally:
        store.shutdown()


@dataclass(frozen=True)
class SharedJobStore:
    """The heartbeat job store every process shares, as the scheduler is given it by the composition root."""

    redis_url: str
    jobs_key: str
    run_times_key: str
    set_aside: UnreadableJob | None = None
    resilience: RedisResilience | None = None

    def open(self) -> TolerantRedisJobStore:
        """A new APScheduler job store on it (its own client: the scheduler shuts it down)."""
        return open_job_store(self.redis_url, self.jobs_key, self.run_times_key, self.set_aside, self.resilience)

    def read(self) -> list[JobInfo]:
        """Every stored job, soonest first, without running a scheduler (blocking: call it in a thread)."""
        return read_jobs(self.redis_url, self.jobs_key, self.run_times_key, self.set_aside, self.resilience)

    def find(self, prefix: str) -> list[Job]:
        """The stored jobs whose id starts with ``prefix`` (``HSCAN``: no other job is read). Blocking."""
        store = self.open()
        try:
            pattern = prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?").replace("[", "\\[")
            ids = sorted({_text(key) for key, _ in store.redis.hscan_iter(self.jobs_key, match=pattern + "*")})
            return [job for job_id in ids if (job := store.lookup_job(job_id)) is not None]
        finally:
            store.shutdown()

    def put(self, job: Job, *, replace: bool = False) -> None:
        """Store a job built outside a scheduler (every scheduler on the store sees it at its next wakeup)."""
        store = self.open()
        try:
            if replace:
                store.remove_job(job.id)
            store.add_job(job)
        finally:
            store.shutdown()

    def delete(self, job_id: str) -> bool:
        """Remove one job; False when there was none of that id. Blocking."""
        store = self.open()
        try:
            if store.lookup_job(job_id) is None:
                return False
            store.remove_job(job_id)
            return True
        finally:
            store.shutdown()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
