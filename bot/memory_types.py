"""Value types of the memory tiers, shared by the runtime (``bot/``) and the stores (``memory/``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.events import AgentKey, Scope

PAGE_SIZE = 5
CORE_LABELS = ("persona", "human")


class MemoryEditError(Exception):
    """A memory function failed; the message is written for the model and tells it what to do instead."""


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
