"""Heartbeats: what an agent does between conversations.

- **Reflection**: once a conversation has been quiet for ``reflect_after``, the agent is woken with a heartbeat event
  about the messages since its last reflection; it updates core memory, saves lasting insights to archival memory
  and normally says nothing. No new message since the last reflection means no model call at all.
- **Consolidation**: periodically, near-duplicate archival notes are merged in code (the kept note carries copies
  of the others), and a core block above ``core_fill_ratio`` of its limit gets a consolidation event asking the
  model to move detail to archival memory.
- **Proactive messages**: a reflection may send one message only if the user opted in, the daily cap is not
  reached, it is outside their quiet hours, and membot is connected to the platform they last spoke on.

Every heartbeat holds the agent's lock, so it never runs beside a turn. ``bot/ops/scheduler.py`` decides when they run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.core.events import AgentKey, ReplyAddress, Scope, utc_now
from bot.core.memory_types import (
    ActivityRecord,
    AuditEntry,
    AuditKind,
    DuplicatePair,
    Fence,
    ProactivePrefs,
    RecallEntry,
    heartbeat_cause,
)
from bot.core.ports import AuditLog, PlatformAdapter, RecallMemory
from bot.core.prompts import load_prompt
from bot.core.tools import ToolFailure
from bot.llm.types import ModelError
from bot.runtime.heartbeat_ports import ArchivalUpkeep, CoreUpkeep, HeartbeatActivity, ProactivePrefsStore
from bot.runtime.proactive import (
    InvalidProactiveSetting,
    ProactivePolicy,
    TimeZoneSetting,
    parse_quiet_hours,
    parse_timezone,
)
from bot.runtime.runtime import EventFailed, Runtime

log = logging.getLogger(__name__)

SILENT = "Proactive message allowed: no ({reason}). Do not call `send_message`: nothing you send now reaches the user."
CONSOLIDATION_SILENT = "this is a consolidation heartbeat"
_WORDS = re.compile(r"\w+")


class HeartbeatSettings(Protocol):
    """The settings heartbeats read (``bot.settings.Settings`` has them; the runtime does not import it)."""

    @property
    def reflect_after_minutes(self) -> float: ...
    @property
    def consolidate_every_minutes(self) -> float: ...
    @property
    def proactive_max_per_day(self) -> int: ...
    @property
    def quiet_hours(self) -> str: ...
    @property
    def timezone(self) -> str: ...


@dataclass(frozen=True)
class HeartbeatConfig:
    """Timing and thresholds of heartbeats (from settings; tests shorten the intervals)."""

    reflect_after: timedelta = timedelta(minutes=15)
    consolidate_every: timedelta = timedelta(hours=6)
    proactive: ProactivePolicy = field(
        default_factory=lambda: ProactivePolicy(False, 2, parse_quiet_hours("22-08"), "UTC")
    )
    core_fill_ratio: float = 0.7  # consolidate a core block above this share of its limit
    merge_similarity: float = 0.85  # merge archival notes at least this similar
    active_for: timedelta = timedelta(days=30)  # consolidation stops for agents quiet longer than this

    @classmethod
    def from_settings(cls, settings: HeartbeatSettings) -> HeartbeatConfig:
        return cls(
            reflect_after=timedelta(minutes=settings.reflect_after_minutes),
            consolidate_every=timedelta(minutes=settings.consolidate_every_minutes),
            proactive=ProactivePolicy(
                enabled=False,
                max_per_day=settings.proactive_max_per_day,
                quiet_hours=parse_quiet_hours(settings.quiet_hours),
                timezone=settings.timezone,
            ),
        )


class Status(StrEnum):
    DONE = "done"  # the heartbeat ran
    NOTHING_NEW = "nothing_new"  # no message since the last reflection: no model call
    NOT_QUIET = "not_quiet"  # the user spoke again; try at retry_at
    BUSY = "busy"  # the agent's lock stayed taken; try at retry_at
    NO_MEMORY = "no_memory"  # the agent's memory was erased
    FAILED = "failed"  # the model could not be reached or the event failed; try at retry_at


@dataclass(frozen=True)
class ReflectionOutcome:
    status: Status
    messages: int = 0  # user messages the reflection covered
    sent: int = 0  # proactive messages delivered
    retry_at: datetime | None = None


@dataclass(frozen=True)
class ConsolidationOutcome:
    status: Status
    condensed: tuple[str, ...] = ()  # labels of core blocks handed to the model
    merged: int = 0  # archival notes merged into others
    retire: bool = False  # the agent is gone or inactive: stop its periodic job


def merged_text(keep: str, drop: str) -> str:
    """The text of a merged note: the kept text, plus the dropped one if it says anything the kept one does not."""
    if set(_WORDS.findall(drop.casefold())) <= set(_WORDS.findall(keep.casefold())):
        return keep
    return f"{keep}\n{drop}"


def keep_and_drop(pair: DuplicatePair) -> tuple[str, str, str]:
    """(keep id, drop id, merged text): the longer note is kept, the newer one on a tie."""
    keep, drop = sorted((pair.first, pair.second), key=lambda hit: (len(hit.text), hit.timestamp), reverse=True)
    return keep.id, drop.id, merged_text(keep.text, drop.text)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


async def _silent_send(text: str) -> None:
    raise ToolFailure("not delivered: no message can reach the user during this heartbeat. Finish your memory work.")


class _ProactiveSender:
    """``send`` for a reflection that may reach the user: one message, re-checked and counted when it is sent."""

    def __init__(
        self,
        heartbeats: Heartbeats,
        agent: AgentKey,
        policy: ProactivePolicy,
        adapter: PlatformAdapter,
        address: ReplyAddress,
    ) -> None:
        self._hb = heartbeats
        self._agent = agent
        self._policy = policy
        self._adapter = adapter
        self._address = address
        self.sent = 0

    async def __call__(self, text: str) -> None:
        if self.sent:
            raise ToolFailure("not delivered: you already sent your one proactive message for now")
        now = utc_now()
        quiet = self._policy.quiet_hours
        if quiet is not None and quiet.contains(self._policy.local(now).time()):
            raise ToolFailure("not delivered: the user's quiet hours have begun")
        day = self._policy.day(now)
        activity = self._hb.activity
        if not await activity.take_proactive_slot(self._agent, day, self._policy.max_per_day):
            raise ToolFailure("not delivered: today's limit of proactive messages is reached")
        try:
            await self._adapter.send_direct(self._address, text)
        except Exception as exc:
            await activity.return_proactive_slot(self._agent, day)
            log.warning("proactive message not delivered", extra={"agent": str(self._agent), "error": repr(exc)[:200]})
            raise ToolFailure("not delivered: the chat platform refused the message; try another time") from None
        self.sent += 1
        scope = Scope.PRIVATE if self._address.is_dm else Scope.PUBLIC
        entry = RecallEntry(
            self._agent, "assistant", text, now, "membot", self._address.platform, self._address.channel_id, scope
        )
        await self._hb.recall.add([entry])


class Heartbeats:
    """Reflection, consolidation and proactive messages for any agent."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        activity: HeartbeatActivity,
        core: CoreUpkeep,
        recall: RecallMemory,
        archival: ArchivalUpkeep,
        audit: AuditLog,
        adapters: Mapping[str, PlatformAdapter],
        config: HeartbeatConfig,
    ) -> None:
        self.runtime = runtime
        self.activity = activity
        self.core = core
        self.recall = recall
        self.archival = archival
        self.audit = audit
        self.adapters = dict(adapters)
        self.config = config

    async def reflect(self, agent: AgentKey) -> ReflectionOutcome:
        """Reflect on what was said since the last reflection, if anything was and the conversation is quiet."""
        early = self._precheck(await self.activity.get(agent))
        if early is not None:
            return early
        try:
            async with self.runtime.agent_lock(agent) as fence:
                return await self._reflect_locked(agent, fence)
        except TimeoutError:
            return ReflectionOutcome(Status.BUSY, retry_at=utc_now() + self.config.reflect_after)

    def _precheck(self, record: ActivityRecord) -> ReflectionOutcome | None:
        if not record.has_news or record.last_message_at is None:
            return ReflectionOutcome(Status.NOTHING_NEW)
        quiet_at = record.last_message_at + self.config.reflect_after
        if utc_now() < quiet_at:
            return ReflectionOutcome(Status.NOT_QUIET, retry_at=quiet_at)
        return None

    async def _reflect_locked(self, agent: AgentKey, fence: Fence) -> ReflectionOutcome:
        record = await self.activity.get(agent)
        early = self._precheck(record)
        if early is not None:
            return early
        if not await self.core.exists(agent):
            await self.activity.forget(agent)
            return ReflectionOutcome(Status.NO_MEMORY)
        started = utc_now()
        sender, proactive = await self._proactive(agent, record, started)
        assert record.last_message_at is not None
        since = record.last_reflection_at
        text = (
            load_prompt("reflection")
            .replace("{last_message}", _when(record.last_message_at))
            .replace("{since}", _when(since) if since else "none yet")
            .replace("{count}", str(record.messages_since))
            .replace("{since_iso}", since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if since else "2000-01-01")
            .replace("{until_iso}", started.strftime("%Y-%m-%dT%H:%M"))
            .replace("{proactive}", proactive)
        )
        try:
            await self.runtime.run_event(
                agent,
                text,
                scope=record.scope,
                send=sender or _silent_send,
                cause=heartbeat_cause("reflection"),
                archival_source="reflection",
                fence=fence,
            )
        except (ModelError, EventFailed) as exc:  # logged by the runtime's event boundary; try again later
            log.warning("reflection failed", extra={"agent": str(agent), "error": str(exc)[:200]})
            return ReflectionOutcome(Status.FAILED, retry_at=utc_now() + self.config.reflect_after)
        await self.activity.mark_reflected(agent, started, record.messages_since)
        sent = sender.sent if sender else 0
        log.info("reflected", extra={"agent": str(agent), "messages": record.messages_since, "sent": sent})
        return ReflectionOutcome(Status.DONE, messages=record.messages_since, sent=sent)

    async def _proactive(
        self, agent: AgentKey, record: ActivityRecord, now: datetime
    ) -> tuple[_ProactiveSender | None, str]:
        """A sender when a proactive message is allowed now (else None), and the prompt text saying which."""
        policy = ProactivePolicy.resolve(await self.activity.proactive_prefs(agent), self.config.proactive)
        address = record.address
        adapter = self.adapters.get(address.platform) if address else None
        reason = policy.refusal(now, await self.activity.proactive_sent(agent, policy.day(now)))
        if reason is None and (adapter is None or address is None):
            reason = "membot is not connected to the platform the user last spoke on"
        if reason is not None or adapter is None or address is None:
            return None, SILENT.replace("{reason}", reason or "")
        where = "a direct message" if address.is_dm else f"channel {address.channel_id}"
        prompt = load_prompt("proactive").replace("{platform}", address.platform).replace("{where}", where)
        return _ProactiveSender(self, agent, policy, adapter, address), prompt

    async def consolidate(self, agent: AgentKey) -> ConsolidationOutcome:
        """Merge near-duplicate archival notes; ask the model to condense core blocks that are getting full."""
        if not await self.core.exists(agent):
            return ConsolidationOutcome(Status.NO_MEMORY, retire=True)
        try:
            async with self.runtime.agent_lock(agent) as fence:
                merged = await self.merge_duplicates(agent)
                full = [b for b in await self.core.blocks(agent) if b.chars > self.config.core_fill_ratio * b.limit]
                status = Status.DONE
                if full:
                    sizes = [f"{b.label} {b.chars}/{b.limit} characters" for b in full]
                    status = await self._condense(agent, sizes, fence)
        except TimeoutError:
            return ConsolidationOutcome(Status.BUSY)
        record = await self.activity.get(agent)
        inactive = record.last_message_at is None or record.last_message_at < utc_now() - self.config.active_for
        labels = tuple(b.label for b in full)
        log.info("consolidated", extra={"agent": str(agent), "merged": merged, "condensed": ",".join(labels)})
        return ConsolidationOutcome(status, condensed=labels, merged=merged, retire=inactive and not full)

    async def _condense(self, agent: AgentKey, blocks: list[str], fence: Fence) -> Status:
        text = (
            load_prompt("consolidation")
            .replace("{blocks}", "; ".join(blocks))
            .replace("{target}", str(round(self.config.core_fill_ratio * 100)))
        )
        try:
            await self.runtime.run_event(
                agent,
                text,
                scope=Scope.PRIVATE,
                send=_silent_send,
                cause=heartbeat_cause("consolidation"),
                archival_source="reflection",
                fence=fence,
            )
        except (ModelError, EventFailed) as exc:  # logged by the runtime's event boundary
            log.warning("consolidation failed", extra={"agent": str(agent), "error": str(exc)[:200]})
            return Status.FAILED
        return Status.DONE

    async def merge_duplicates(self, agent: AgentKey) -> int:
        """Merge each pair of near-duplicate archival notes (an entry takes part in one merge per run)."""
        merged = 0
        touched: set[str] = set()
        for pair in await self.archival.near_duplicates(agent, self.config.merge_similarity):
            if pair.first.id in touched or pair.second.id in touched:
                continue
            keep_id, drop_id, text = keep_and_drop(pair)
            await self.archival.merge(agent, keep_id, [drop_id], text)
            detail = {"kept": keep_id, "dropped": [drop_id], "similarity": round(pair.similarity, 3)}
            entry = AuditEntry(AuditKind.ARCHIVAL_MERGE, heartbeat_cause("consolidation"), detail=detail)
            await self.audit.record(agent, entry)
            touched.update((keep_id, drop_id))
            merged += 1
        return merged


class ProactiveControl:
    """Turn proactive messages on or off for a user (``membot memory proactive`` and the platform commands)."""

    def __init__(self, activity: ProactivePrefsStore, defaults: ProactivePolicy) -> None:
        self._activity = activity
        self._defaults = defaults

    async def policy(self, agent: AgentKey) -> ProactivePolicy:
        return ProactivePolicy.resolve(await self._activity.proactive_prefs(agent), self._defaults)

    async def timezone(self, agent: AgentKey, zone: str | None = None) -> TimeZoneSetting:
        """The user's time zone (reminders, quiet hours); with ``zone``, set it first, keeping the other proactive
        settings. Raises InvalidProactiveSetting for a zone that is not an IANA name."""
        if zone is not None:
            policy = await self.set(agent, (await self._activity.proactive_prefs(agent)).enabled, timezone=zone)
            return TimeZoneSetting(policy.timezone, own=True)
        own = (await self._activity.proactive_prefs(agent)).timezone
        return TimeZoneSetting(own or self._defaults.timezone, own=own is not None)

    async def set(
        self,
        agent: AgentKey,
        enabled: bool,
        *,
        quiet_hours: str | None = None,
        timezone: str | None = None,
        max_per_day: int | None = None,
    ) -> ProactivePolicy:
        """Store the choice; options left as None keep their stored value. Raises InvalidProactiveSetting."""
        if quiet_hours is not None:
            parse_quiet_hours(quiet_hours)
        if timezone is not None:
            parse_timezone(timezone)
        if max_per_day is not None and max_per_day < 0:
            raise InvalidProactiveSetting("max per day must be 0 or more")
        current = await self._activity.proactive_prefs(agent)
        prefs = ProactivePrefs(
            enabled=enabled,
            quiet_hours=current.quiet_hours if quiet_hours is None else quiet_hours.strip(),
            timezone=current.timezone if timezone is None else timezone.strip(),
            max_per_day=current.max_per_day if max_per_day is None else max_per_day,
        )
        await self._activity.set_proactive_prefs(agent, prefs)
        return ProactivePolicy.resolve(prefs, self._defaults)
