"""What users and admins may see and do with an agent's memory: show, export, reset, erase, forget, import.

Every operation that writes takes the agent's lock, so it never runs beside a turn, and records what it did in the
audit trail with its ``cause`` (core writes record themselves, atomically, in the core store). History, rollback
and private marks are in ``bot.admin.repair``. Who may call what is decided before, by ``bot.admin.authz``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.admin.documents import passages, read_document
from bot.admin.ports import (
    ActivityAdmin,
    ArchivalAdmin,
    AuditTrail,
    CoreAdmin,
    PersonState,
    Quarantine,
    RecallAdmin,
    WorkingAdmin,
)
from bot.admin.redaction import Redactor
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import ArchivalEntry, AuditEntry, AuditKind, Block, Reminder, SearchHit, SearchPage
from bot.core.ports import Reminders
from bot.core.privacy import hidden_count, visible_blocks, visible_lines

EXPORT_FORMAT = "membot-export/1"
FORGET_PAGES = 10  # search pages of 5 a forget looks through, per store


class UnknownAgent(LookupError):
    """No memory is stored for this agent key."""


@dataclass(frozen=True)
class MemoryView:
    """A summary of one agent's memory, for ``memory show``. A PUBLIC view leaves out private core lines (counted
    in ``hidden``) and the summary of older conversation (it may retell direct messages)."""

    agent: AgentKey
    blocks: list[Block]
    queue_length: int
    summary: str
    recall_count: int
    archival_count: int
    last_modified: datetime | None
    scope: Scope = Scope.PRIVATE
    hidden: int = 0
    quarantined: int = 0  # stored items that did not parse, moved aside (``memory export`` shows them)

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": str(self.agent),
            "core": {b.label: {"value": b.value, "chars": b.chars, "limit": b.limit} for b in self.blocks},
            "queue_length": self.queue_length,
            "summary": self.summary,
            "recall_count": self.recall_count,
            "archival_count": self.archival_count,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
            "view": self.scope.value,
            "hidden_private_lines": self.hidden,
            "quarantined": self.quarantined,
        }


@dataclass(frozen=True)
class ForgetCandidate:
    """Something a forget would remove: a recall message, an archival note, or a core memory line."""

    store: str  # "recall" | "archival" | "core:<label>"
    id: str  # point id, or the exact line for core
    text: str
    query: str = ""  # what the user asked to forget (the queue and summaries are redacted by it)


@dataclass(frozen=True)
class ImportReport:
    """Outcome of importing one document into archival memory."""

    source: str
    chunks: int  # passages the document was cut into
    stored: int  # passages stored
    duplicates: int  # passages already in archival memory (not stored again)

    def sentence(self, shown_name: str) -> str:
        """What to tell the user who sent the file (``shown_name``: the name as the platform should show it)."""
        line = f"Imported {shown_name} into my archival memory: {self.stored} of {self.chunks} passages stored"
        return line + (f" ({self.duplicates} I already had)." if self.duplicates else ".")


class MemoryAdmin:
    """Show, export, reset, erase, forget and import an agent's memory across Redis and Qdrant."""

    def __init__(
        self,
        core: CoreAdmin,
        working: WorkingAdmin,
        recall: RecallAdmin,
        archival: ArchivalAdmin,
        lock: Callable[[AgentKey], AbstractAsyncContextManager[object]],
        *,
        audit: AuditTrail,
        person_of: Callable[[AgentKey], str],
        activity: ActivityAdmin | None = None,
        throttle: PersonState | None = None,
        quarantine: Quarantine | None = None,
        reminders: Reminders | None = None,
    ) -> None:
        self._quarantine = quarantine
        self._reminders = reminders
        self.core = core
        self.audit = audit
        self.lock = lock
        self._working = working
        self._recall = recall
        self._archival = archival
        self._activity = activity
        self._throttle = throttle
        self._person_of = person_of  # the platform's rule: whom rate limits and dedupe flags name

    async def agents(self) -> list[AgentKey]:
        """Every agent with core memory, sorted."""
        return await self.core.agents()

    async def require(self, agent: AgentKey) -> None:
        """Raise UnknownAgent when nothing is stored for ``agent``."""
        if (
            not await self.core.exists(agent)
            and not await self._recall.count(agent)
            and not await self._archival.count(agent)
        ):
            raise UnknownAgent(f"no memory is stored for {agent}")

    async def require_any(self, agent: AgentKey) -> None:
        """Raise UnknownAgent when nothing at all is stored for ``agent``: no memory, and no core versions or audit
        trail either (a reset keeps those, and they are erased and exported too)."""
        if await self.core.version(agent) or await self.audit.history(agent, 1):
            return
        await self.require(agent)

    async def remains(self, agent: AgentKey) -> dict[str, int]:
        """What is kept of an agent whose memory was reset or erased: core versions and audit entries (UnknownAgent
        when nothing at all is stored)."""
        await self.require_any(agent)
        return {
            "core_versions": len(await self.core.versions(agent)),
            "audit_entries": len(await self.audit.export(agent)),
        }

    async def show(self, agent: AgentKey, scope: Scope = Scope.PRIVATE) -> MemoryView:
        """The agent's memory as a context of ``scope`` may show it (counts are always totals)."""
        await self.require(agent)
        blocks = await self.core.blocks(agent)
        queue_length = len(await self._working.messages(agent))  # reading moves unreadable items aside: count after
        return MemoryView(
            agent=agent,
            blocks=visible_blocks(blocks, scope),
            queue_length=queue_length,
            summary=await self._working.summary(agent, scope),
            recall_count=await self._recall.count(agent),
            archival_count=await self._archival.count(agent),
            last_modified=await self.core.last_modified(agent),
            scope=scope,
            hidden=hidden_count(blocks, scope),
            quarantined=await self._quarantine.count(agent) if self._quarantine else 0,
        )

    async def export(self, agent: AgentKey) -> dict[str, Any]:
        """Everything stored about the agent across Redis and Qdrant, as one JSON-ready document."""
        await self.require_any(agent)
        async with self.lock(agent):
            return {
                "format": EXPORT_FORMAT,
                "agent": str(agent),
                "exported_at": datetime.now(UTC).isoformat(),
                "core": await self.core.export(agent),
                "working": await self._working.export(agent),
                "recall": await self._recall.export(agent),
                "archival": await self._archival.export(agent),
                "audit": await self.audit.export(agent),
                "quarantine": await self._quarantine.export(agent) if self._quarantine else [],
                "heartbeats": await self._activity.export(agent) if self._activity else {},
                "reminders": [r.as_dict() for r in await self.reminders(agent)],
                "platform_state": {
                    "person": self._person_of(agent),
                    "keys": await self._throttle.export(self._person_of(agent)) if self._throttle else [],
                },
            }

    async def reminders(self, agent: AgentKey) -> list[Reminder]:
        """The agent's pending reminders, soonest first (none when this membot keeps no reminders)."""
        return await self._reminders.pending(agent) if self._reminders is not None else []

    async def cancel_reminder(self, agent: AgentKey, reminder_id: str) -> Reminder | None:
        """Cancel one pending reminder; the one cancelled, or None when the agent has none of that id."""
        found = next((r for r in await self.reminders(agent) if r.id == reminder_id.strip()), None)
        if found is None or self._reminders is None or not await self._reminders.cancel(agent, found.id):
            return None
        return found

    async def reset(self, agent: AgentKey, *, cause: str) -> dict[str, int]:
        """Clear the agent's memory (core, queue, summary, recall, archival, heartbeat state) but keep its audit
        trail and core versions, so an admin can see what happened and roll core memory back."""
        await self.require(agent)
        async with self.lock(agent):
            removed = await self._clear_stores(agent)
            blocks, version = await self.core.reset(agent, cause=cause)
            removed = {"core": blocks, **removed}
            await self.audit.record(
                agent, AuditEntry(AuditKind.RESET, cause, version=version, detail={"removed": removed})
            )
            return removed

    async def erase(self, agent: AgentKey, *, cause: str) -> dict[str, int]:
        """Remove everything stored about the agent: every store, core versions, audit trail, heartbeat jobs,
        rate-limit and dedupe keys. One audit entry remains: the record of this erase."""
        await self.require_any(agent)
        async with self.lock(agent):
            removed = {"core": await self.core.erase(agent), **await self._clear_stores(agent)}
            if self._throttle is not None:
                removed["rate_limit_and_dedupe_keys"] = await self._throttle.erase(self._person_of(agent))
            removed["audit_entries"] = await self.audit.erase(
                agent, AuditEntry(AuditKind.ERASE, cause, detail={"removed": dict(removed)})
            )
            return removed

    async def _clear_stores(self, agent: AgentKey) -> dict[str, int]:
        removed = {
            "working": await self._working.erase(agent),
            "recall": await self._recall.erase(agent),
            "archival": await self._archival.erase(agent),
        }
        if self._reminders is not None:
            pending = await self._reminders.pending(agent)
            removed["reminders"] = sum([await self._reminders.cancel(agent, r.id) for r in pending])
        if self._activity is not None:
            await self._activity.erase(agent)  # activity, schedules and reminders, proactive choice and counters
        if self._quarantine is not None:
            removed["quarantine"] = await self._quarantine.erase(agent)
        return removed

    async def import_document(
        self,
        agent: AgentKey,
        name: str,
        data: bytes,
        scope: Scope,
        *,
        cause: str,
        detail: Mapping[str, object] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Read a file (text, Markdown, HTML, PDF, DOCX: ``bot.admin.documents``) into archival memory, in passages
        naming the file, page and position. Raises DocumentError (with the reason, for the user) when it cannot
        be read; a passage already stored is counted, not stored again. ``progress(done, total)`` follows the
        passages (first with ``done`` 0); ``detail`` is added to the audit entry."""
        document = read_document(name, data)
        texts = [piece.text for piece in passages(document)]
        audited = {**(detail or {}), "sha256": document.sha256, "kind": document.kind}
        advance = (lambda done: progress(done, len(texts))) if progress is not None else None
        if progress is not None:
            progress(0, len(texts))  # the total is known before the first passage is stored
        return await self.import_passages(
            agent, document.name, texts, scope, cause=cause, detail=audited, progress=advance
        )

    async def import_passages(
        self,
        agent: AgentKey,
        source_name: str,
        texts: Sequence[str],
        scope: Scope,
        *,
        cause: str,
        detail: Mapping[str, object] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Insert passages into archival memory under the agent's lock, in order; a passage already stored (the
        same text: a file imported again) is counted, not stored. ``progress`` is called after each passage; the
        import is audited once, with ``detail``."""
        stored: list[str] = []
        async with self.lock(agent):
            for done, text in enumerate(texts, start=1):
                entry = ArchivalEntry(agent, text, datetime.now(UTC), scope=scope, source="import")
                result = await self._archival.insert(entry)
                if result.stored:
                    stored.append(result.id)
                if progress is not None:
                    progress(done)
            record = {**(detail or {}), "source": source_name, "chunks": len(texts), "stored": len(stored)}
            record |= {"ids": stored, "scope": scope.value}
            await self.audit.record(agent, AuditEntry(AuditKind.IMPORT, cause, detail=record))
        return ImportReport(source_name, len(texts), len(stored), len(texts) - len(stored))

    async def search(self, agent: AgentKey, query: str, context_scope: Scope) -> list[SearchHit]:
        """The best recall and archival matches for ``query`` (first page of each)."""
        await self.require(agent)
        recall = await self._recall.search(agent, query, 0, context_scope)
        archival = await self._archival.search(agent, query, 0, context_scope)
        return sorted([*recall.hits, *archival.hits], key=lambda hit: hit.score, reverse=True)

    async def forget_candidates(
        self, agent: AgentKey, query: str, scope: Scope = Scope.PRIVATE
    ) -> list[ForgetCandidate]:
        """What ``forget(query)`` would remove: top recall/archival matches (and messages not yet indexed) and the
        core lines containing the query, as far as a context of ``scope`` may show them."""
        await self.require(agent)
        needle = query.strip().lower()
        if not needle:
            return []
        found: list[ForgetCandidate] = []
        for block in await self.core.blocks(agent):
            found.extend(
                ForgetCandidate(f"core:{block.label}", line, line, query)
                for line in dict.fromkeys(visible_lines(block.value.splitlines(), scope))
                if needle in line.lower()
            )
        waiting = await self._recall.waiting(agent, scope)
        recall = await _all_pages(self._recall.search, agent, query, scope)
        archival = await _all_pages(self._archival.search, agent, query, scope)
        seen: set[str] = set()
        for store, hits in (("recall", [*recall, *waiting]), ("archival", archival)):
            for hit in hits:
                if hit.id not in seen and _mentions(f"{hit.text}\n{hit.attachment_text or ''}", needle):
                    seen.add(hit.id)
                    found.append(ForgetCandidate(store, hit.id, hit.text, query))
        return found

    async def forget(self, agent: AgentKey, candidates: list[ForgetCandidate], *, cause: str) -> int:
        """Remove the given candidates (as returned by forget_candidates); return how many were removed.

        Core lines are removed whole (never part of a longer line) and from every kept core version, so no
        rollback brings them back; recall messages also from the outbox (no indexer writes them later). The queue
        and both summaries are redacted (``bot.admin.redaction``: no model call, so forget works in a model outage).
        The audit trail records what was removed, in ids and counts, never the text.
        """
        removed: dict[str, int] = {}
        forgotten: list[tuple[str, str]] = []
        async with self.lock(agent):
            lines_by_label: dict[str, list[str]] = {}
            for candidate in candidates:
                if candidate.store.startswith("core:"):
                    lines_by_label.setdefault(candidate.store.split(":", 1)[1], []).append(candidate.id)
            for label, lines in lines_by_label.items():
                count = await self.core.remove_lines(agent, label, lines, cause=cause)
                if count:
                    forgotten.extend((label, line) for line in lines)
                    removed["core_lines"] = removed.get("core_lines", 0) + count
            if forgotten:
                scrubbed = await self.core.scrub(agent, forgotten)
                detail = {"lines": len(forgotten), "versions": scrubbed}
                await self.audit.record(agent, AuditEntry(AuditKind.CORE_SCRUB, cause, detail=detail))
            for store, kind, delete in (
                ("recall", AuditKind.RECALL_DELETE, self._recall.delete),
                ("archival", AuditKind.ARCHIVAL_DELETE, self._archival.delete),
            ):
                ids = list(dict.fromkeys(c.id for c in candidates if c.store == store))
                if ids:
                    count = await delete(agent, ids)
                    removed[store] = count
                    await self.audit.record(agent, AuditEntry(kind, cause, detail={"ids": ids, "deleted": count}))
            queries = {c.query for c in candidates if c.query}
            redact = Redactor(" ".join(sorted(queries)) if len(queries) == 1 else "", [c.text for c in candidates])
            if candidates:
                removed["queue_and_summary_texts"] = await self._working.rewrite(agent, redact)
                await self.audit.record(agent, AuditEntry(AuditKind.FORGET, cause, detail={"removed": removed}))
        return sum(count for store, count in removed.items() if store != "queue_and_summary_texts")


async def _all_pages(
    search: Callable[[AgentKey, str, int, Scope], Awaitable[SearchPage]], agent: AgentKey, query: str, scope: Scope
) -> list[SearchHit]:
    """Every hit a search gives (at most ``FORGET_PAGES`` pages): forget must not stop at the first five."""
    hits: list[SearchHit] = []
    for number in range(FORGET_PAGES):
        page = await search(agent, query, number, scope)
        hits.extend(page.hits)
        if number + 1 >= page.pages:
            break
    return hits


def _mentions(text: str, query: str) -> bool:
    """Whether ``text`` shares a word of three or more letters with ``query`` (or contains it whole).

    Search always returns its nearest matches; forgetting must only offer entries that are about the query.
    """
    lowered = text.lower()
    words = {word for word in re.findall(r"\w+", query) if len(word) >= 3}
    return query in lowered or any(re.search(rf"\b{re.escape(word)}", lowered) for word in words)
