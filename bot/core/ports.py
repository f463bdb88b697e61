"""The Protocols the runtime depends on; ``memory/``, ``bot/llm/`` and ``adapters/`` implement them.

Search methods take ``context_scope``: searching from a PUBLIC context returns only public entries; from a
PRIVATE context (a DM, the console) it returns everything of that agent.

Writes a turn makes take ``fence`` (``bot.core.memory_types.Fence``): the holding of the agent's lock the turn took. A
store refuses the write with ``LockLost`` once that holding is over; ``None`` writes unfenced (admin paths, tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.core.events import AgentKey, InboundMessage, OutboundReply, ReplyAddress, Scope
from bot.core.memory_types import (
    ActivityRecord,
    ArchivalEntry,
    AuditEntry,
    Block,
    CoreVersion,
    DuplicatePair,
    Fence,
    InsertResult,
    ProactivePrefs,
    RecallEntry,
    SearchHit,
    SearchPage,
)
from bot.llm.types import ChatMessage, Completion, SystemPrompt, ToolSpec


class ChatModel(Protocol):
    """A chat model with tool calling. Raises ContextOverflowError or ModelError (after its own retries)."""

    provider: str
    model: str

    async def complete(
        self,
        system: SystemPrompt,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        *,
        max_output_tokens: int,
    ) -> Completion: ...

    def count_tokens(self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> int:
        """Tokens the prompt will take (exact where a tokenizer is known, a calibrated estimate otherwise)."""
        ...

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        ...


class Embedder(Protocol):
    """Turns texts into dense vectors. Implementations run CPU work off the event loop."""

    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...


class CoreMemory(Protocol):
    """Core memory blocks (persona, human) of each agent. Edits are atomic and never exceed a block's limit.

    Every write takes its ``cause`` (see ``AuditEntry``), stores the whole core memory as a new numbered version and
    adds its own audit entry, all in one atomic step.
    """

    async def ensure(
        self, agent: AgentKey, defaults: dict[str, str], *, cause: str, fence: Fence | None = None
    ) -> None:
        """Create missing blocks with the given initial values; existing blocks are left alone."""
        ...

    async def blocks(self, agent: AgentKey) -> list[Block]: ...

    async def append(
        self,
        agent: AgentKey,
        label: str,
        content: str,
        *,
        cause: str,
        private: bool = False,
        fence: Fence | None = None,
    ) -> Block:
        """Append a line (marked private when ``private``); raise MemoryEditError (missing label, limit exceeded)
        with advice for the model."""
        ...

    async def replace(
        self,
        agent: AgentKey,
        label: str,
        old: str,
        new: str,
        *,
        cause: str,
        public_only: bool = False,
        fence: Fence | None = None,
        private: bool = False,
    ) -> Block:
        """Replace ``old`` with ``new``; raise MemoryEditError (missing label/text, limit exceeded).
        ``public_only`` leaves private lines untouched (an edit made where they are not shown); ``private`` marks
        the lines the edit changed private (an edit made in a DM)."""
        ...

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

    async def last_modified(self, agent: AgentKey) -> datetime | None: ...

    async def exists(self, agent: AgentKey) -> bool: ...

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every stored item of this agent, versions included, as JSON-ready dicts (for export)."""
        ...

    async def erase(self, agent: AgentKey) -> int:
        """Remove everything of this agent, versions included; return how many blocks were removed."""
        ...


class AuditLog(Protocol):
    """The per-agent audit trail of memory writes (newest entries kept up to a cap)."""

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


class WorkingMemory(Protocol):
    """The message queue and the recursive summary of evicted messages."""

    async def messages(self, agent: AgentKey) -> list[ChatMessage]: ...

    async def append(self, agent: AgentKey, messages: Sequence[ChatMessage], *, fence: Fence | None = None) -> None: ...

    async def summary(self, agent: AgentKey, scope: Scope = Scope.PRIVATE) -> str:
        """The summary of evicted messages: of all of them, or (PUBLIC) of the public ones only."""
        ...

    async def evict(
        self, agent: AgentKey, count: int, new_summary: str, new_public_summary: str, *, fence: Fence | None = None
    ) -> None:
        """Atomically drop the oldest ``count`` messages, store both new summaries, and clear the pressure flag."""
        ...

    async def pressure_alerted(self, agent: AgentKey) -> bool:
        """Whether the memory-pressure alert was already raised in this eviction cycle."""
        ...

    async def set_pressure_alerted(self, agent: AgentKey, *, fence: Fence | None = None) -> None: ...

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


class RecallMemory(Protocol):
    """Every message ever exchanged, searchable by meaning and by date."""

    async def add(self, entries: Sequence[RecallEntry], *, fence: Fence | None = None) -> None: ...

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage: ...

    async def search_date(
        self, agent: AgentKey, start: datetime, end: datetime, page: int, context_scope: Scope
    ) -> SearchPage: ...

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

    async def waiting(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> list[SearchHit]:
        """The agent's messages stored but not yet searchable (``id`` is the id they will have)."""
        ...


class ArchivalMemory(Protocol):
    """Unbounded notes the agent writes; near-duplicate inserts are reported, not stored twice."""

    async def insert(self, entry: ArchivalEntry, *, fence: Fence | None = None) -> InsertResult: ...

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

    async def near_duplicates(self, agent: AgentKey, threshold: float) -> list[DuplicatePair]:
        """Pairs of the agent's entries (same scope) at least ``threshold`` similar, most similar first."""
        ...

    async def merge(self, agent: AgentKey, keep_id: str, drop_ids: Sequence[str], text: str) -> None:
        """Rewrite entry ``keep_id`` to ``text`` with copies of the dropped entries in it, then delete those."""
        ...


class AgentLocks(Protocol):
    """A lock per agent that holds across processes, with a short lease renewed while it is held."""

    def hold(
        self, agent: AgentKey, *, on_wait: Callable[[], Awaitable[None]] | None = None
    ) -> AbstractAsyncContextManager[Fence]:
        """Hold the agent's lock; the value is this holding's fence. ``on_wait`` is awaited once if the lock is
        busy for a few seconds (to tell the user), and the wait ends with ``TimeoutError`` at the wait limit."""
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


class ReplySink(Protocol):
    """Where an agent's words go: a console, a Discord channel, a Slack thread."""

    async def send(self, reply: OutboundReply) -> None: ...

    def typing(self) -> AbstractAsyncContextManager[None]:
        """Show a typing indicator while the agent thinks (may do nothing)."""
        ...


class Throttle(Protocol):
    """Per-person rate limits and once-only handling of platform events, shared by every process.

    ``person`` is ``AgentKey.person`` of the sender, so that everything kept about a person can be erased.
    """

    async def allow(self, person: str, per_minute: int) -> bool:
        """Count one event for ``person``; False when it is over ``per_minute`` in the current minute."""
        ...

    async def first_time(self, person: str, event_id: str, ttl_seconds: int = 86_400) -> bool:
        """True the first time ``person``'s event id is seen (across processes), False for a repeat."""
        ...

    async def export(self, person: str) -> list[str]:
        """The names of the rate-limit counters and dedupe flags kept for ``person``."""
        ...

    async def erase(self, person: str) -> int:
        """Remove every rate-limit counter and dedupe flag of ``person``; return how many."""
        ...


class ChannelModes(Protocol):
    """Per-channel reply mode set by admins: "mention" (default) or "always"."""

    async def get(self, platform: str, channel_id: str) -> str: ...

    async def set(self, platform: str, channel_id: str, mode: str) -> None: ...


class PlatformAdapter(Protocol):
    """A chat platform connection started by ``membot run``."""

    platform: str

    async def run(self) -> None:
        """Connect and serve events until cancelled; clean up on cancellation."""
        ...

    async def send_direct(self, address: ReplyAddress, text: str) -> None:
        """Send a message nobody asked for (a proactive message) to where the user last spoke."""
        ...


class ActivityLog(Protocol):
    """Per-agent conversation activity and proactive-message choices, shared by every process."""

    async def record_message(self, agent: AgentKey, address: ReplyAddress, at: datetime) -> None:
        """A user message arrived at ``at`` from ``address`` (counted toward the next reflection)."""
        ...

    async def get(self, agent: AgentKey) -> ActivityRecord: ...

    async def mark_reflected(self, agent: AgentKey, at: datetime, seen: int) -> None:
        """A reflection that started at ``at`` covered ``seen`` messages."""
        ...

    async def forget(self, agent: AgentKey) -> None:
        """Drop the activity record (the agent's memory was erased); proactive choices stay."""
        ...

    async def erase(self, agent: AgentKey) -> None:
        """Remove everything heartbeats keep about the agent: activity, proactive choice and counters, scheduled
        jobs and their firing guards."""
        ...

    async def export(self, agent: AgentKey) -> dict[str, Any]:
        """Everything heartbeats keep about the agent, as a JSON-ready dict."""
        ...

    async def recent_agents(self, since: datetime) -> list[AgentKey]:
        """Agents whose user spoke at or after ``since``."""
        ...

    async def proactive_prefs(self, agent: AgentKey) -> ProactivePrefs: ...

    async def set_proactive_prefs(self, agent: AgentKey, prefs: ProactivePrefs) -> None: ...

    async def proactive_sent(self, agent: AgentKey, day: str) -> int:
        """Proactive messages sent to the agent's user on local date ``day`` (YYYY-MM-DD)."""
        ...

    async def take_proactive_slot(self, agent: AgentKey, day: str, cap: int) -> bool:
        """Atomically count one proactive message on ``day`` if fewer than ``cap`` were sent; False otherwise."""
        ...

    async def return_proactive_slot(self, agent: AgentKey, day: str) -> None:
        """Give back a slot whose message could not be delivered."""
        ...


class FiringGuard(Protocol):
    """Makes each scheduled firing of a job run once, however many schedulers see it."""

    async def claim(self, job_id: str, fire_time: datetime, ttl_seconds: float) -> bool:
        """True for the first claim of (job, fire time) across processes; False for every later one."""
        ...


class HeartbeatPlanner(Protocol):
    """What the runtime tells the heartbeat scheduler."""

    async def conversation_active(self, agent: AgentKey, at: datetime) -> None:
        """The user spoke at ``at``: (re)schedule the agent's reflection for when the conversation has gone quiet."""
        ...


@dataclass(frozen=True)
class JournalEntry:
    """One message kept in the outage journal, and its id there."""

    id: str
    message: InboundMessage


class MessageJournal(Protocol):
    """Messages that arrived while the memory store was unreachable, durable on local disk until answered."""

    async def append(self, message: InboundMessage) -> str:
        """Keep ``message`` (durably, before returning); returns its entry id."""
        ...

    async def done(self, entry_id: str) -> None:
        """The entry's turn stored it: it is not replayed again."""
        ...

    async def pending(self) -> list[JournalEntry]:
        """Entries not yet answered, oldest first."""
        ...

    def close(self) -> None:
        """Release the journal; what is pending stays for the next process."""
        ...
