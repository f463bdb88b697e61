"""The Protocols a turn depends on; ``memory/``, ``bot/llm/`` and ``adapters/`` implement them.

Each port holds only what the core and the runtime call: the wider operations of the admin commands (export,
erase, rollback, scrub ...) are in ``bot/admin/ports.py``, those of heartbeats in ``bot/runtime/heartbeat_ports.py``.

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
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable

from bot.core.events import AgentKey, InboundMessage, OutboundReply, ReplyAddress, Scope
from bot.core.memory_types import (
    ArchivalEntry,
    AuditEntry,
    Block,
    Fence,
    InsertResult,
    RecallEntry,
    Reminder,
    SearchPage,
)
from bot.llm.types import ChatMessage, Completion, ReplyPreview, SystemPrompt, ToolSpec


class ChatModel(Protocol):
    """A chat model with tool calling. Raises ContextOverflowError or ModelError (after its own retries).

    ``preview``: told the growing text of each reply while the completion is produced (a model that cannot
    stream ignores it); the Completion is the same with or without it."""

    provider: str
    model: str

    async def complete(
        self,
        system: SystemPrompt,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        *,
        max_output_tokens: int,
        preview: ReplyPreview | None = None,
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

    async def last_modified(self, agent: AgentKey) -> datetime | None: ...


class AuditLog(Protocol):
    """The per-agent audit trail of memory writes (newest entries kept up to a cap)."""

    async def record(self, agent: AgentKey, entry: AuditEntry) -> str:
        """Add ``entry``; return its id."""
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


class ArchivalMemory(Protocol):
    """Unbounded notes the agent writes; near-duplicate inserts are reported, not stored twice."""

    async def insert(self, entry: ArchivalEntry, *, fence: Fence | None = None) -> InsertResult: ...

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage: ...

    async def count(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> int:
        """How many entries a search from ``context_scope`` could find."""
        ...


class AgentLocks(Protocol):
    """A lock per agent that holds across processes, with a short lease renewed while it is held."""

    def hold(
        self, agent: AgentKey, *, on_wait: Callable[[], Awaitable[None]] | None = None
    ) -> AbstractAsyncContextManager[Fence]:
        """Hold the agent's lock; the value is this holding's fence. ``on_wait`` is awaited once if the lock is
        busy for a few seconds (to tell the user), and the wait ends with ``TimeoutError`` at the wait limit."""
        ...


class ReplySink(Protocol):
    """Where an agent's words go: a console, a Discord channel, a Slack thread."""

    async def send(self, reply: OutboundReply) -> None: ...

    def typing(self) -> AbstractAsyncContextManager[None]:
        """Show a typing indicator while the agent thinks (may do nothing)."""
        ...


class LiveReply(Protocol):
    """One reply shown while the model writes it: one or more platform messages, edited in place."""

    async def show(self, text: str) -> None:
        """Show ``text`` (the reply so far, as the model writes it) instead of what was shown; may raise."""
        ...

    async def finish(self, reply: OutboundReply) -> None:
        """Make the messages exactly what ``send(reply)`` would have posted (failures are logged, not raised)."""
        ...

    async def discard(self) -> None:
        """Remove what was shown: the reply was never sent."""
        ...


@runtime_checkable
class LiveReplies(Protocol):
    """A ReplySink that can also show a reply as it grows (optional: the runtime checks for it).

    ``live_interval``: the fewest seconds between two edits of one message (the platform's rate limits)."""

    live_interval: float

    async def send(self, reply: OutboundReply) -> None: ...

    def typing(self) -> AbstractAsyncContextManager[None]: ...

    def live_reply(self) -> LiveReply:
        """A new reply to show; nothing is posted before its first ``show``."""
        ...


class CheckIn(NamedTuple):
    """What ``Throttle.check_in`` found: the event is new under every id, and (if new) within the person's limit."""

    new: bool
    within_limit: bool


class Throttle(Protocol):
    """Per-person rate limits and once-only handling of platform events, shared by every process.

    ``person`` is the sender as ``adapters.keys.person_of`` names it, so that everything kept about a person can
    be erased.
    """

    async def allow(self, person: str, per_minute: int) -> bool:
        """Count one event for ``person``; False when it is over ``per_minute`` in the current minute."""
        ...

    async def first_time(self, person: str, event_id: str, ttl_seconds: int = 86_400) -> bool:
        """True the first time ``person``'s event id is seen (across processes), False for a repeat."""
        ...

    async def check_in(self, person: str, event_ids: Sequence[str], per_minute: int) -> CheckIn:
        """``first_time`` for each of ``event_ids`` and, for a new event, ``allow``, in one round trip when the
        event is new (a repeat is not counted against the limit)."""
        ...

    async def export(self, person: str) -> list[str]:
        """The names of the rate-limit counters and dedupe flags kept for ``person``."""
        ...

    async def erase(self, person: str) -> int:
        """Remove every rate-limit counter and dedupe flag of ``person``; return how many."""
        ...


class ChannelMode(StrEnum):
    """How membot treats a server channel (``bot.runtime.channels`` says what each means)."""

    OFF = "off"
    MENTION = "mention"
    ALWAYS = "always"
    LISTEN = "listen"

    @classmethod
    def parse(cls, value: str) -> ChannelMode:
        """The mode named ``value`` (any case); ValueError naming the modes otherwise."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValueError(f"unknown channel mode {value!r}; use one of {', '.join(m.value for m in cls)}") from None


class ChannelModes(Protocol):
    """Per-channel mode set by admins: off, mention (the default), always or listen (``ChannelMode`` values)."""

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


class Reminders(Protocol):
    """The reminders users asked the model for: kept as scheduler jobs shared by every process."""

    async def timezone(self, agent: AgentKey) -> str:
        """The user's IANA time zone (their proactive setting, else ``MEMBOT_TIMEZONE``)."""
        ...

    async def schedule(self, agent: AgentKey, due: datetime, text: str, *, scope: Scope) -> Reminder:
        """Keep a reminder firing at ``due`` (aware); the caller checked the time and text."""
        ...

    async def pending(self, agent: AgentKey) -> list[Reminder]:
        """The agent's reminders not yet delivered, soonest first."""
        ...

    async def cancel(self, agent: AgentKey, reminder_id: str) -> bool:
        """Remove one of the agent's reminders; False when it has none of that id."""
        ...


class ActivityRecorder(Protocol):
    """Where the runtime counts a user's messages toward the next reflection (shared by every process)."""

    async def record_message(self, agent: AgentKey, address: ReplyAddress, at: datetime) -> None:
        """A user message arrived at ``at`` from ``address`` (counted toward the next reflection)."""
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
