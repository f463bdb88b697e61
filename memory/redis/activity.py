"""Heartbeat state on Redis: per-agent conversation activity, proactive choices and counters, firing guards.

``RedisActivityLog`` implements the activity ports (``bot.runtime.heartbeat_ports``, ``ActivityRecorder`` of
``bot.core.ports``, ``ActivityAdmin`` of ``bot.admin.ports``); ``RedisFiringGuard`` implements ``FiringGuard`` of
``bot.runtime.heartbeat_ports`` with ``SET NX PX``: one scheduled firing runs once however many schedulers see it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bot.core.events import AgentKey, ReplyAddress
from bot.core.memory_types import (
    HEARTBEAT_JOB_KINDS,
    ActivityRecord,
    ProactivePrefs,
    heartbeat_job_id,
    reminder_job_prefix,
)
from memory.redis.client import AsyncRedis
from memory.redis.keys import RedisKeys
from memory.redis.platform_state import delete_keys, scan_keys

PROACTIVE_COUNTER_TTL = 3 * 86_400  # a local day can start up to 14 h before or end 12 h after the UTC day

# KEYS: counter. ARGV: cap, ttl seconds. Returns 1 and counts one when under the cap, else 0.
_TAKE_SLOT = """
local sent = tonumber(redis.call('GET', KEYS[1]) or '0')
if sent >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: activity hash. ARGV: reflection start (RFC 3339), messages covered.
_MARK_REFLECTED = """
redis.call('HSET', KEYS[1], 'last_reflection', ARGV[1])
local left = tonumber(redis.call('HINCRBY', KEYS[1], 'since', -tonumber(ARGV[2])))
if left <= 0 then
  redis.call('HSET', KEYS[1], 'since', 0)
  redis.call('HSET', KEYS[1], 'private_since', 0)
end
return left
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _moment(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw).astimezone(UTC) if raw else None


class RedisActivityLog:
    """The activity ports on Redis: one hash per agent, an index of agents by last message, proactive counters."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._take_slot = redis.register_script(_TAKE_SLOT)
        self._mark_reflected = redis.register_script(_MARK_REFLECTED)

    async def record_message(self, agent: AgentKey, address: ReplyAddress, at: datetime) -> None:
        # The index is global (another cluster slot than the agent's hash), so it is written on its own, first: a
        # stop in between leaves the agent listed as recently active with its previous record, which the scheduler
        # reads and acts on as before (the hash decides); the other order could hide a new message from it.
        await self._redis.zadd(self._keys.activity_index(), {str(agent): at.timestamp()})
        key = self._keys.activity(agent)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"last_message": _stamp(at), "address": json.dumps(asdict(address))})
            pipe.hincrby(key, "since", 1)
            if address.is_dm:
                pipe.hset(key, "private_since", 1)
            await pipe.execute()

    async def get(self, agent: AgentKey) -> ActivityRecord:
        raw = {_text(k): _text(v) for k, v in (await self._redis.hgetall(self._keys.activity(agent))).items()}
        address = ReplyAddress(**json.loads(raw["address"])) if raw.get("address") else None
        return ActivityRecord(
            last_message_at=_moment(raw.get("last_message")),
            last_reflection_at=_moment(raw.get("last_reflection")),
            messages_since=max(0, int(raw.get("since", 0))),
            private_since=raw.get("private_since") == "1",
            address=address,
        )

    async def mark_reflected(self, agent: AgentKey, at: datetime, seen: int) -> None:
        await self._mark_reflected(keys=[self._keys.activity(agent)], args=[_stamp(at), max(0, seen)])

    async def forget(self, agent: AgentKey) -> None:
        # Two slots on a cluster, so two commands: the index first, so no scheduler plans work for the agent from
        # it once it is going; a stop in between leaves the unindexed hash, which forgetting again removes.
        await self._redis.zrem(self._keys.activity_index(), str(agent))
        await self._redis.delete(self._keys.activity(agent))

    async def recent_agents(self, since: datetime) -> list[AgentKey]:
        members = await self._redis.zrangebyscore(self._keys.activity_index(), since.timestamp(), "+inf")
        return [AgentKey.parse(_text(m)) for m in members if isinstance(m, bytes | str)]

    async def proactive_prefs(self, agent: AgentKey) -> ProactivePrefs:
        raw = {_text(k): _text(v) for k, v in (await self._redis.hgetall(self._keys.proactive(agent))).items()}
        return ProactivePrefs(
            enabled=raw.get("enabled") == "1",
            quiet_hours=raw.get("quiet_hours"),
            timezone=raw.get("timezone"),
            max_per_day=int(raw["max_per_day"]) if raw.get("max_per_day") else None,
        )

    async def set_proactive_prefs(self, agent: AgentKey, prefs: ProactivePrefs) -> None:
        values = {
            "enabled": "1" if prefs.enabled else "0",
            "quiet_hours": prefs.quiet_hours,
            "timezone": prefs.timezone,
            "max_per_day": None if prefs.max_per_day is None else str(prefs.max_per_day),
        }
        key = self._keys.proactive(agent)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={k: v for k, v in values.items() if v is not None})
            await pipe.execute()

    async def proactive_sent(self, agent: AgentKey, day: str) -> int:
        return int(await self._redis.get(self._keys.proactive_sent(agent, day)) or 0)

    async def take_proactive_slot(self, agent: AgentKey, day: str, cap: int) -> bool:
        key = self._keys.proactive_sent(agent, day)
        return bool(await self._take_slot(keys=[key], args=[cap, PROACTIVE_COUNTER_TTL]))

    async def return_proactive_slot(self, agent: AgentKey, day: str) -> None:
        key = self._keys.proactive_sent(agent, day)
        if int(await self._redis.decr(key)) < 0:
            await self._redis.set(key, 0, ex=PROACTIVE_COUNTER_TTL)

    def _jobs(self, agent: AgentKey) -> list[str]:
        return [heartbeat_job_id(kind, agent) for kind in HEARTBEAT_JOB_KINDS]

    def _patterns(self, agent: AgentKey) -> list[str]:
        guarded = [*self._jobs(agent), f"{reminder_job_prefix(agent)}*"]  # reminders: remind:<agent>:<id>
        return [self._keys.proactive_sent_pattern(agent), *map(self._keys.job_run_guard_pattern, guarded)]

    async def erase(self, agent: AgentKey) -> None:
        """Remove everything heartbeats keep about the agent: activity, proactive choice and daily counters, its
        scheduled jobs (straight from the APScheduler job store, which every scheduler re-reads) and their firing
        guards."""
        await self.forget(agent)
        jobs = self._jobs(agent)
        async with self._redis.pipeline(transaction=True) as pipe:  # the job store's two keys: one hash tag
            pipe.hdel(self._keys.scheduler_jobs(), *jobs)
            pipe.zrem(self._keys.scheduler_run_times(), *jobs)
            await pipe.execute()
        found = await scan_keys(self._redis, [self._keys.proactive_sent_pattern(agent)])
        await self._redis.delete(self._keys.proactive(agent), *found)  # the agent's keys: one slot, one DEL
        # Firing guards are keyed by job and firing (any slot). With the jobs gone no new guard appears, and each
        # guard is a flag that expires in a day, so deleting them key by key needs no atomicity.
        guards = await scan_keys(self._redis, [p for p in self._patterns(agent) if ":jobrun:" in p])
        await delete_keys(self._redis, guards)

    async def export(self, agent: AgentKey) -> dict[str, Any]:
        """Activity, proactive choice and counters, scheduled jobs (id, next run) and firing guards."""
        activity = {_text(k): _text(v) for k, v in (await self._redis.hgetall(self._keys.activity(agent))).items()}
        proactive = {_text(k): _text(v) for k, v in (await self._redis.hgetall(self._keys.proactive(agent))).items()}
        found = await scan_keys(self._redis, self._patterns(agent))
        counters = [key for key in found if ":proactive-sent:" in key]
        values = await self._redis.mget(counters) if counters else []
        jobs = []
        for job_id in self._jobs(agent):
            score = await self._redis.zscore(self._keys.scheduler_run_times(), job_id)
            if score is not None or await self._redis.hexists(self._keys.scheduler_jobs(), job_id):
                next_run = datetime.fromtimestamp(score, UTC).isoformat() if score is not None else None
                jobs.append({"id": job_id, "next_run_time": next_run})
        return {
            "activity": activity,
            "proactive": proactive,
            "proactive_sent": {key.rsplit(":", 1)[1]: _text(v) for key, v in zip(counters, values, strict=True) if v},
            "jobs": jobs,
            "job_firings": [key for key in found if ":jobrun:" in key],
        }


JOB_DONE = "done"  # in place of a fire time: the job's work is done


class RedisFiringGuard:
    """``FiringGuard`` on Redis: ``SET <prefix>:jobrun:<job id>:<fire time> 1 NX PX <ttl>``, and
    ``<prefix>:jobrun:<job id>:done`` once the job's work is done."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def claim(self, job_id: str, fire_time: datetime, ttl_seconds: float) -> bool:
        key = self._keys.job_run_guard(job_id, fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        return bool(await self._redis.set(key, 1, nx=True, px=max(1, int(ttl_seconds * 1000))))

    async def finish(self, job_id: str, ttl_seconds: float) -> None:
        """``SET <prefix>:jobrun:<job id>:done``: among the job's guards, so erase and export see it too."""
        await self._redis.set(self._keys.job_run_guard(job_id, JOB_DONE), 1, px=max(1, int(ttl_seconds * 1000)))

    async def finished(self, job_id: str) -> bool:
        return bool(await self._redis.exists(self._keys.job_run_guard(job_id, JOB_DONE)))
