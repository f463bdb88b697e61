"""Value types of the memory tiers, shared by the runtime (``bot/``) and the stores (``memory/``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.events import AgentKey, ReplyAddress, Scope, utc_now

PAGE_SIZE = 5
CORE_LABELS = ("persona", "human")
PRIVATE_MARK = "[private]"  # a core memory line starting with this is private (see bot/core/privacy.py)
HEARTBEAT_JOB_KINDS = ("reflect", "consolidate")


REMINDER_JOB_KIND = "remind"


def heartbeat_job_id(kind: str, agent: AgentKey) -> str:
    """The scheduler's job id of one heartbeat kind ("reflect" or "consolidate") of an agent."""
    return f"{kind}:{agent}"


def reminder_job_prefix(agent: AgentKey) -> str:
    """Every reminder job of an agent has an id starting with this: ``remind:<agent>:<reminder id>[~<retry>]``."""
    return f"{REMINDER_JOB_KIND}:{agent}:"


@dataclass(frozen=True)
class Reminder:
    """A reminder the user asked for: ``text`` is delivered at ``due`` (UTC) where the user last spoke.

    ``timezone`` is the user's time zone when it was set (to show ``due`` in local time); ``scope`` is the scope of
    the conversation it was set in (a private reminder is not shown in a public channel)."""

    id: str
    agent: AgentKey
    due: datetime
    text: str
    timezone: str
    scope: Scope
    created_at: datetime
    attempt: int = 0  # delivery retries so far (the platform was unreachable)

    def local_due(self) -> str:
        return f"{self.due.astimezone(ZoneInfo(self.timezone)):%Y-%m-%d %H:%M} {self.timezone}"

    def as_dict(self) -> dict[str, str | int]:
        return {
            "id": self.id,
            "due": self.due.astimezone(UTC).isoformat(),
            "local_due": self.local_due(),
            "text": self.text,
            "timezone": self.timezone,
            "scope": self.scope.value,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class JobInfo:
    """One stored heartbeat job (``membot jobs list``); ``of`` reads it from an APScheduler job."""

    id: str
    kind: str
    agent: str
    next_run_time: datetime | None
    trigger: str

    @classmethod
    def of(cls, job: Any) -> JobInfo:
        kind, _, agent = str(job.id).partition(":")
        if kind == REMINDER_JOB_KIND:  # remind:<agent>:<reminder id>
            agent = agent.rpartition(":")[0]
        next_run = getattr(job, "next_run_time", None)
        return cls(str(job.id), kind, agent, next_run.astimezone(UTC) if next_run else None, str(job.trigger))

    def as_dict(self) -> dict[str, str | None]:
        when = self.next_run_time.isoformat() if self.next_run_time else None
        return {"id": self.id, "kind": self.kind, "agent": self.agent, "next_run_time": when, "trigger": self.trigger}


def is_private(line: str) -> bool:
    """Whether a core memory line is marked private."""
    return line.startswith(PRIVATE_MARK)


def unmarked(line: str) -> str:
    """The line without its private mark (and the one space after it)."""
    if not is_private(line):
        return line
    rest = line[len(PRIVATE_MARK) :]
    return rest[1:] if rest.startswith(" ") else rest


def marked(text: str) -> str:
    """Every non-blank line of ``text`` marked private (lines already marked stay as they are)."""
    return "\n".join(
        line if not line.strip() or is_private(line) else f"{PRIVATE_MARK} {line}" for line in text.splitlines()
    )


class MemoryEditError(Exception):
    """A memory function failed; the message is written for the model and tells it what to do instead."""


class VersionNotKept(LookupError):
    """A core memory version that is not (or no longer) stored; the message names the versions kept."""


@dataclass(frozen=True)
class Block:
    """One core memory block (always in the prompt)."""

    label: str
    value: str
    limit: int

    @property
    def chars(self) -> int:
        return len(self.value)


@dataclass(frozen=True)
class RecallEntry:
    """One message as stored in recall memory (everything ever exchanged)."""

    agent: AgentKey
    role: str  # "user" or "assistant"
    text: str
    timestamp: datetime
    author: str
    platform: str
    channel: str
    scope: Scope = Scope.PRIVATE
    message_id: str | None = None
    # what an attachment shows (e.g. an image caption): indexed for search, never part of ``text``
    attachment_text: str | None = None


@dataclass(frozen=True)
class ArchivalEntry:
    """One note in archival memory."""

    agent: AgentKey
    text: str
    timestamp: datetime
    scope: Scope = Scope.PRIVATE
    source: str = "agent"  # agent | import | reflection


@dataclass(frozen=True)
class SearchHit:
    """One search result; ``id`` is the store's point id."""

    id: str
    text: str
    timestamp: datetime
    score: float
    role: str | None = None
    author: str | None = None
    attachment_text: str | None = None  # a recall message's attachments, described (e.g. what an image shows)


@dataclass(frozen=True)
class DuplicatePair:
    """Two archival entries of one agent and scope that say nearly the same thing."""

    first: SearchHit
    second: SearchHit
    similarity: float


@dataclass(frozen=True)
class SearchPage:
    """A page of search results (pages of PAGE_SIZE, numbered from 0) and the total number of matches known."""

    hits: tuple[SearchHit, ...]
    page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


@dataclass(frozen=True)
class InsertResult:
    """Outcome of an archival insert: stored, or a near-duplicate of an existing entry (not stored again)."""

    id: str
    stored: bool
    duplicate_text: str | None = None


@dataclass(frozen=True)
class MemoryStats:
    recall_count: int
    archival_count: int
    last_modified: datetime | None


@dataclass(frozen=True)
class ActivityRecord:
    """One agent's conversation as heartbeats see it."""

    last_message_at: datetime | None = None  # when the user last spoke (membot's clock, UTC)
    last_reflection_at: datetime | None = None  # when the last reflection started
    messages_since: int = 0  # user messages since the last reflection
    private_since: bool = False  # some of them were in a DM (or the console)
    address: ReplyAddress | None = None  # where the user last spoke

    @property
    def has_news(self) -> bool:
        """A user message arrived after the last reflection."""
        if self.last_message_at is None:
            return False
        return self.last_reflection_at is None or self.last_message_at > self.last_reflection_at

    @property
    def scope(self) -> Scope:
        """Scope of what a reflection writes: private if anything since the last one was private."""
        if self.private_since or self.address is None or self.address.is_dm:
            return Scope.PRIVATE
        return Scope.PUBLIC


@dataclass(frozen=True)
class ProactivePrefs:
    """A user's proactive-message choice as stored; unset fields fall back to the configured defaults."""

    enabled: bool = False
    quiet_hours: str | None = None
    timezone: str | None = None
    max_per_day: int | None = None


class AuditKind(StrEnum):
    """What a memory write did. Core kinds carry the core version they produced."""

    CORE_INIT = "core_init"  # blocks created with their defaults
    CORE_APPEND = "core_append"
    CORE_REPLACE = "core_replace"
    CORE_MARK = "core_mark"  # lines marked private or public
    CORE_ROLLBACK = "core_rollback"
    CORE_SCRUB = "core_scrub"  # forgotten lines removed from every kept version
    ARCHIVAL_INSERT = "archival_insert"
    ARCHIVAL_MERGE = "archival_merge"
    ARCHIVAL_DELETE = "archival_delete"
    RECALL_DELETE = "recall_delete"
    RESET = "reset"
    IMPORT = "import"
    ERASE = "erase"
    QUARANTINE = "quarantine"  # an unreadable stored item was moved aside (``memory.redis.quarantine``)
    FORGET = "forget"  # what a forget touched, in counts per store (never the text)


@dataclass(frozen=True)
class AuditEntry:
    """One memory write as the audit trail keeps it: when, what, and what caused it.

    ``cause`` is ``event:<platform>:<message id>`` (a turn), ``heartbeat:<kind>`` (reflection, consolidation),
    ``user:<platform>:<id>`` (a person's command on their own memory), ``admin:<platform>:<id>`` (an admin's
    command) or ``cli``. ``detail`` holds ids, counts, scope and source, never memory text: core text lives in
    the core versions (``version`` names the one this write produced), so forgetting can remove it everywhere.
    """

    kind: str
    cause: str
    at: datetime = field(default_factory=utc_now)
    version: int | None = None
    label: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""  # the stream entry id, filled in when read back


def event_cause(platform: str, message_id: str | None) -> str:
    """The cause of writes made while answering a message."""
    return f"event:{platform}:{message_id or 'unknown'}"


def heartbeat_cause(kind: str) -> str:
    """The cause of writes made by a heartbeat ("reflection", "consolidation")."""
    return f"heartbeat:{kind}"


@dataclass(frozen=True)
class CoreVersion:
    """The whole core memory of an agent after one write: version numbers count every core write of the agent."""

    version: int
    at: datetime
    kind: str
    cause: str
    blocks: Mapping[str, str]
    label: str | None = None


# --- fencing: proof that a turn still holds its agent's lock -------------------------------------------------------
# Taking an agent's lock yields a Fence (a token unique to that holding). A turn passes it to the stores (``fence=``
# on each write); the store checks, atomically with the write where Redis allows it, that the lock is still held
# with that token, and raises LockLost otherwise. So a turn whose lease ran out and whose agent another process has
# since taken writes nothing more. ``fence=None`` means unfenced: admin and CLI paths, tests writing outside a turn.
class LockLost(Exception):
    """The turn no longer holds its agent's lock (its lease expired and another holder may have taken it): the
    write was refused and the turn must stop writing."""


@dataclass(frozen=True)
class Fence:
    """One holding of an agent's lock: ``token`` is the lock's value while this holding lasts.

    ``number`` grows with every acquisition (it is when the lock was taken, in microseconds on the Redis clock),
    which says in logs which holder superseded which; the token's random part makes it unique.
    """

    agent: AgentKey
    token: str

    @property
    def number(self) -> int:
        head, _, _ = self.token.partition(":")
        return int(head) if head.isdigit() else 0

    def __str__(self) -> str:
        return f"{self.agent}#{self.number}"


def fence_token(fence: Fence | None, agent: AgentKey) -> str:
    """The token a store sends with a write of ``agent`` ('' for unfenced); a fence of another agent is a bug."""
    if fence is None:
        return ""
    if fence.agent != agent:
        raise ValueError(f"a fence of {fence.agent} cannot guard a write of {agent}")
    return fence.token
