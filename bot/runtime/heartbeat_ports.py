"""The storage operations heartbeats (reflection, consolidation, proactive messages) and their scheduler use.

``memory/redis/activity.py`` and the memory stores implement them; the turn's own ports are in
``bot/core/ports.py`` and the admin commands' wider ones in ``bot/admin/ports.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bot.core.events import AgentKey
from bot.core.memory_types import ActivityRecord, Block, DuplicatePair, ProactivePrefs


class ProactivePrefsStore(Protocol):
    """The proactive-message choice of each agent's user."""

    async def proactive_prefs(self, agent: AgentKey) -> ProactivePrefs: ...

    async def set_proactive_prefs(self, agent: AgentKey, prefs: ProactivePrefs) -> None: ...


class ActivitySchedule(Protocol):
    """What the scheduler reads to plan reflections."""

    async def get(self, agent: AgentKey) -> ActivityRecord: ...

    async def recent_agents(self, since: datetime) -> list[AgentKey]:
        """Agents whose user spoke at or after ``since``."""
        ...


class HeartbeatActivity(Protocol):
    """Per-agent conversation activity and proactive-message counters, shared by every process."""

    async def get(self, agent: AgentKey) -> ActivityRecord: ...

    async def mark_reflected(self, agent: AgentKey, at: datetime, seen: int) -> None:
        """A reflection that started at ``at`` covered ``seen`` messages."""
        ...

    async def forget(self, agent: AgentKey) -> None:
        """Drop the activity record (the agent's memory was erased); proactive choices stay."""
        ...

    async def proactive_prefs(self, agent: AgentKey) -> ProactivePrefs: ...

    async def proactive_sent(self, agent: AgentKey, day: str) -> int:
        """Proactive messages sent to the agent's user on local date ``day`` (YYYY-MM-DD)."""
        ...

    async def take_proactive_slot(self, agent: AgentKey, day: str, cap: int) -> bool:
        """Atomically count one proactive message on ``day`` if fewer than ``cap`` were sent; False otherwise."""
        ...

    async def return_proactive_slot(self, agent: AgentKey, day: str) -> None:
        """Give back a slot whose message could not be delivered."""
        ...


class CoreUpkeep(Protocol):
    """Core memory as reflection and consolidation read it."""

    async def exists(self, agent: AgentKey) -> bool: ...

    async def blocks(self, agent: AgentKey) -> list[Block]: ...


class ArchivalUpkeep(Protocol):
    """Archival memory as consolidation tidies it."""

    async def near_duplicates(self, agent: AgentKey, threshold: float) -> list[DuplicatePair]:
        """Pairs of the agent's entries (same scope) at least ``threshold`` similar, most similar first."""
        ...

    async def merge(self, agent: AgentKey, keep_id: str, drop_ids: Sequence[str], text: str) -> None:
        """Rewrite entry ``keep_id`` to ``text`` with copies of the dropped entries in it, then delete those."""
        ...


class FiringGuard(Protocol):
    """Makes each scheduled firing of a job run once, however many schedulers see it."""

    async def claim(self, job_id: str, fire_time: datetime, ttl_seconds: float) -> bool:
        """True for the first claim of (job, fire time) across processes; False for every later one."""
        ...

    async def finish(self, job_id: str, ttl_seconds: float) -> None:
        """Mark the job's work done for good (a reminder delivered), whatever later firings of it say."""
        ...

    async def finished(self, job_id: str) -> bool:
        """Whether ``finish`` marked the job's work done (within its ttl)."""
        ...
