"""The wider storage operations the admin commands use (show, export, reset, erase, forget, history, rollback).

The stores of ``memory/`` implement them alongside the turn's narrow ports of ``bot/core/ports.py``; only
``bot/admin`` depends on these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import ArchivalEntry, AuditEntry, Block, CoreVersion, InsertResult, SearchHit, SearchPage
from bot.llm.types import ChatMessage


class CoreRepair(Protocol):
    """Core memory as history, rollback and private marks see it (``MemoryRepair``)."""

    async def blocks(self, agent: AgentKey) -> list[Block]: ...

    async def exists(self, agent: AgentKey) -> bool: ...

    async def mark(self, agent: AgentKey, label: str, line: str, private: bool, *, cause: str) -> Block:
        """Mark the lines equal to ``line`` private (or public again); MemoryEditError if there is none."""
        ...

    async def version(self, agent: AgentKey) -> int:
        """The newest core version (0 before any core write)."""
        ...

    async def versions(self, agent: AgentKey, numbers: Sequence[int] | None = None) -> list[CoreVersion]:
        """The kept versions (or the kept ones among ``numbers``), oldest first."""
        ...

    async def rollback(self, agent: AgentKey, version: int, *, cause: str) -> int:
        """Restore the blocks of ``version`` as a new version; return it. Raises VersionNotKept."""
        ...


class CoreAdmin(Protocol):
    """Core memory as show, export, reset, erase and forget see it (``MemoryAdmin``)."""

    async def blocks(self, agent: AgentKey) -> list[Block]: ...

    async def exists(self, agent: AgentKey) -> bool: ...

    async def agents(self) -> list[AgentKey]:
        """Every agent that has core memory, sorted."""
        ...

    async def last_modified(self, agent: AgentKey) -> datetime | None: ...

    async def version(self, agent: AgentKey) -> int:
        """The newest core version (0 before any core write)."""
        ...

    async def versions(self, agent: AgentKey, numbers: Sequence[int] | None = None) -> list[CoreVersion]:
        """The kept versions (or the kept ones among ``numbers``), oldest first."""
        ...

    async def reset(self, agent: AgentKey, *, cause: str) -> tuple[int, int]:
        """Remove the blocks but keep the versions (the empty core becomes one, audited by the caller);
        return (blocks removed, new version)."""
        ...

    async def remove_lines(self, agent: AgentKey, label: str, lines: Sequence[str], *, cause: str) -> int:
        """Remove the lines of block ``label`` equal to one of ``lines`` (whole lines, private mark included; never
        part of a longer line); return how many lines were removed (0: none matched)."""
        ...

    async def scrub(self, agent: AgentKey, lines: Sequence[tuple[str, str]]) -> int:
        """Remove these (label, line) lines from every kept version; return how many versions changed."""
        ...

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every stored item of this agent, versions included, as JSON-ready dicts (for export)."""
        ...

    async def erase(self, agent: AgentKey) -> int:
        """Remove everything of this agent, versions included; return how many blocks were removed."""
        ...


class AuditTrail(Protocol):
    """The per-agent audit trail of memory writes, read, exported and erased by the admin commands."""

    async def record(self, agent: AgentKey, entry: AuditEntry) -> str:
        """Add ``entry``; return its id."""
        ...

    async def history(self, agent: AgentKey, limit: int, before: str | None = None) -> list[AuditEntry]:
        """Up to ``limit`` entries, newest first; ``before`` (an entry id) pages back past that entry."""
        ...

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every entry, oldest first, as JSON-ready dicts."""
        ...

    async def erase(self, agent: AgentKey, final: AuditEntry) -> int:
        """Remove every entry and record ``final`` (the erase itself) in one step; return how many were removed."""
        ...


class AuditHistory(Protocol):
    """The audit trail as history and rollback read it (``MemoryRepair``)."""

    async def history(self, agent: AgentKey, limit: int, before: str | None = None) -> list[AuditEntry]:
        """Up to ``limit`` entries, newest first; ``before`` (an entry id) pages back past that entry."""
        ...


class WorkingAdmin(Protocol):
    """The message queue and summaries as show, export, erase and forget see them."""

    async def messages(self, agent: AgentKey) -> list[ChatMessage]: ...

    async def summary(self, agent: AgentKey, scope: Scope = Scope.PRIVATE) -> str:
        """The summary of evicted messages: of all of them, or (PUBLIC) of the public ones only."""
        ...

    async def rewrite(self, agent: AgentKey, redact: Callable[[str], str]) -> int:
        """Pass every queued message's texts and both summaries through ``redact`` and store what changed, at once;
        return how many texts changed (forget uses it)."""
        ...

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every stored item of this agent as JSON-ready dicts (for export)."""
        ...

    async def erase(self, agent: AgentKey) -> int:
        """Remove everything of this agent; return how many items were removed."""
        ...


class RecallAdmin(Protocol):
    """Recall memory as show, export, erase and forget see it."""

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage: ...

    async def count(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> int:
        """How many entries a search from ``context_scope`` could find."""
        ...

    async def waiting(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> list[SearchHit]:
        """The agent's messages stored but not yet searchable (``id`` is the id they will have)."""
        ...

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every stored item of this agent as JSON-ready dicts (for export)."""
        ...

    async def erase(self, agent: AgentKey) -> int:
        """Remove everything of this agent; return how many items were removed."""
        ...

    async def delete(self, agent: AgentKey, ids: Sequence[str]) -> int:
        """Delete this agent's entries with these ids (others' ids are ignored); return how many."""
        ...


class ArchivalAdmin(Protocol):
    """Archival memory as show, export, erase, forget and import see it."""

    async def insert(self, entry: ArchivalEntry) -> InsertResult: ...

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage: ...

    async def count(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> int:
        """How many entries a search from ``context_scope`` could find."""
        ...

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every stored item of this agent as JSON-ready dicts (for export)."""
        ...

    async def erase(self, agent: AgentKey) -> int:
        """Remove everything of this agent; return how many items were removed."""
        ...

    async def delete(self, agent: AgentKey, ids: Sequence[str]) -> int:
        """Delete this agent's entries with these ids (others' ids are ignored); return how many."""
        ...


class ActivityAdmin(Protocol):
    """What heartbeats keep about an agent, as export and erase see it."""

    async def export(self, agent: AgentKey) -> dict[str, Any]:
        """Everything heartbeats keep about the agent, as a JSON-ready dict."""
        ...

    async def erase(self, agent: AgentKey) -> None:
        """Remove everything heartbeats keep about the agent: activity, proactive choice and counters, scheduled
        jobs and their firing guards."""
        ...


class PersonState(Protocol):
    """The rate-limit counters and dedupe flags kept for a person, as export and erase see them."""

    async def export(self, person: str) -> list[str]:
        """The names of the rate-limit counters and dedupe flags kept for ``person``."""
        ...

    async def erase(self, person: str) -> int:
        """Remove every rate-limit counter and dedupe flag of ``person``; return how many."""
        ...


class Quarantine(Protocol):
    """Stored items of an agent that did not parse, moved aside by the stores that found them."""

    async def count(self, agent: AgentKey) -> int: ...

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every quarantined item with its raw value, store and reason, as JSON-ready dicts."""
        ...

    async def erase(self, agent: AgentKey) -> int:
        """Remove every quarantined item; return how many."""
        ...
