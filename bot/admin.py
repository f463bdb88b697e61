"""What users and admins may see and do with an agent's memory: show, export, reset, forget, import.

Every operation takes the agent's lock, so it never runs beside a turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.chunking import chunk_text
from bot.events import AgentKey, Scope
from bot.memory_types import ArchivalEntry, Block, MemoryEditError, SearchHit
from bot.ports import ActivityLog, ArchivalMemory, CoreMemory, RecallMemory, WorkingMemory

EXPORT_FORMAT = "membot-export/1"


class UnknownAgent(LookupError):
    """No memory is stored for this agent key."""


@dataclass(frozen=True)
class MemoryView:
    """A summary of one agent's memory, for ``memory show``."""

    agent: AgentKey
    blocks: list[Block]
    queue_length: int
    summary: str
    recall_count: int
    archival_count: int
    last_modified: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": str(self.agent),
            "core": {b.label: {"value": b.value, "chars": b.chars, "limit": b.limit} for b in self.blocks},
            "queue_length": self.queue_length,
            "summary": self.summary,
            "recall_count": self.recall_count,
            "archival_count": self.archival_count,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
        }


@dataclass(frozen=True)
class ForgetCandidate:
    """Something a forget would remove: a recall message, an archival note, or a core memory line."""

    store: str  # "recall" | "archival" | "core:<label>"
    id: str  # point id, or the exact line for core
    text: str


@dataclass(frozen=True)
class ImportReport:
    """Outcome of importing one document into archival memory."""

    source: str
    chunks: int  # passages the document was cut into
    stored: int  # passages stored
    duplicates: int  # passages already in archival memory (not stored again)


class MemoryAdmin:
    """Show, export and reset an agent's memory across Redis and Qdrant."""

    def __init__(
        self,
        core: CoreMemory,
        working: WorkingMemory,
        recall: RecallMemory,
        archival: ArchivalMemory,
        lock: Callable[[AgentKey], AbstractAsyncContextManager[None]],
        activity: ActivityLog | None = None,
    ) -> None:
        self._core = core
        self._working = working
        self._recall = recall
        self._archival = archival
        self._lock = lock
        self._activity = activity

    async def _require(self, agent: AgentKey) -> None:
        if (
            not await self._core.exists(agent)
            and not await self._recall.count(agent)
            and not await self._archival.count(agent)
        ):
            raise UnknownAgent(f"no memory is stored for {agent}")

    async def show(self, agent: AgentKey) -> MemoryView:
        await self._require(agent)
        return MemoryView(
            agent=agent,
            blocks=await self._core.blocks(agent),
            queue_length=len(await self._working.messages(agent)),
            summary=await self._working.summary(agent),
            recall_count=await self._recall.count(agent),
            archival_count=await self._archival.count(agent),
            last_modified=await self._core.last_modified(agent),
        )

    async def export(self, agent: AgentKey) -> dict[str, Any]:
        """Everything stored about the agent, as one JSON-ready document."""
        await self._require(agent)
        async with self._lock(agent):
            return {
                "format": EXPORT_FORMAT,
                "agent": str(agent),
                "exported_at": datetime.now(UTC).isoformat(),
                "core": await self._core.export(agent),
                "working": await self._working.export(agent),
                "recall": await self._recall.export(agent),
                "archival": await self._archival.export(agent),
            }

    async def reset(self, agent: AgentKey) -> dict[str, int]:
        """Erase every store of the agent; return how many items each held."""
        await self._require(agent)
        async with self._lock(agent):
            removed = {
                "core": await self._core.erase(agent),
                "working": await self._working.erase(agent),
                "recall": await self._recall.erase(agent),
                "archival": await self._archival.erase(agent),
            }
            if self._activity is not None:
                await self._activity.erase(agent)  # schedules, last address, proactive choice
            return removed

    async def import_text(self, agent: AgentKey, source_name: str, text: str, scope: Scope) -> ImportReport:
        """Cut a document into passages and insert them into archival memory; duplicates are counted, not stored."""
        chunks = chunk_text(text)
        stored = 0
        async with self._lock(agent):
            for chunk in chunks:
                entry = ArchivalEntry(
                    agent, f"From {source_name}:\n{chunk}", datetime.now(UTC), scope=scope, source="import"
                )
                result = await self._archival.insert(entry)
                stored += result.stored
        return ImportReport(source_name, len(chunks), stored, len(chunks) - stored)

    async def search(self, agent: AgentKey, query: str, context_scope: Scope) -> list[SearchHit]:
        """The best recall and archival matches for ``query`` (first page of each)."""
        await self._require(agent)
        recall = await self._recall.search(agent, query, 0, context_scope)
        archival = await self._archival.search(agent, query, 0, context_scope)
        return sorted([*recall.hits, *archival.hits], key=lambda hit: hit.score, reverse=True)

    async def forget_candidates(self, agent: AgentKey, query: str) -> list[ForgetCandidate]:
        """What ``forget(query)`` would remove: top recall/archival matches and core lines containing the query."""
        await self._require(agent)
        needle = query.strip().lower()
        if not needle:
            return []
        found: list[ForgetCandidate] = []
        for block in await self._core.blocks(agent):
            found.extend(
                ForgetCandidate(f"core:{block.label}", line, line)
                for line in block.value.splitlines()
                if needle in line.lower()
            )
        recall = await self._recall.search(agent, query, 0, Scope.PRIVATE)
        archival = await self._archival.search(agent, query, 0, Scope.PRIVATE)
        found.extend(ForgetCandidate("recall", hit.id, hit.text) for hit in recall.hits if _mentions(hit.text, needle))
        found.extend(
            ForgetCandidate("archival", hit.id, hit.text) for hit in archival.hits if _mentions(hit.text, needle)
        )
        return found

    async def forget(self, agent: AgentKey, candidates: list[ForgetCandidate]) -> int:
        """Remove the given candidates (as returned by forget_candidates); return how many were removed."""
        removed = 0
        async with self._lock(agent):
            for candidate in candidates:
                if candidate.store.startswith("core:"):
                    try:
                        await self._core.replace(agent, candidate.store.split(":", 1)[1], candidate.id, "")
                        removed += 1
                    except MemoryEditError:
                        continue
            removed += await self._recall.delete(agent, [c.id for c in candidates if c.store == "recall"])
            removed += await self._archival.delete(agent, [c.id for c in candidates if c.store == "archival"])
        return removed


def _mentions(text: str, query: str) -> bool:
    """Whether ``text`` shares a word of three or more letters with ``query`` (or contains it whole).

    Search always returns its nearest matches; forgetting must only offer entries that are about the query.
    """
    lowered = text.lower()
    words = {word for word in re.findall(r"\w+", query) if len(word) >= 3}
    return query in lowered or any(re.search(rf"\b{re.escape(word)}", lowered) for word in words)
