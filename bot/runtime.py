"""The runtime: event → agent → sink, one turn at a time per agent.

For each inbound message it takes the agent's lock (a Redis lock that holds across processes; waiters in one
process are served in order), stores the user message in recall (its outbox) and in the queue *before* calling the
model, records the activity heartbeats work from, runs the step loop, and delivers each ``send_message`` to the
sink at once. System events (heartbeats) run through ``run_event`` under the same lock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC

from bot.agent import Agent, TurnReport
from bot.audit import event_cause
from bot.events import AgentKey, InboundMessage, OutboundReply, ReplyKind, Scope, utc_now
from bot.llm.types import ChatMessage, ModelError
from bot.memory_types import RecallEntry
from bot.outage import OutageBridge, TrackedSink
from bot.ports import (
    ActivityLog,
    AgentLocks,
    ArchivalMemory,
    AuditLog,
    CoreMemory,
    HeartbeatPlanner,
    RecallMemory,
    ReplySink,
    WorkingMemory,
)
from bot.prompts import load_prompt
from bot.tools import ToolContext

log = logging.getLogger(__name__)

EMPTY_NOTICE = "Your message was empty, so there is nothing for me to answer."
MODEL_DOWN_NOTICE = (
    "Sorry, I can't reach my language model right now. Your message is saved; please try again in a moment."
)
RECENT_CONTEXT_LIMIT = 5


def pack_user_message(message: InboundMessage, text: str) -> str:
    """The user message as the model sees it: who, where and when, then the text."""
    when = f"{message.timestamp.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if message.is_dm:
        return f"[{when}] {message.author_name} (direct message, {message.platform}):\n{text}"
    where = f"#{message.channel_name}" if message.channel_name else f"channel {message.channel_id}"
    header = f"[{when}] {message.author_name} in {where} ({message.platform}, public)"
    lines = [header]
    recent = message.recent_context[-RECENT_CONTEXT_LIMIT:]
    if recent:
        lines.append("Recent messages from others in the channel:")
        lines.extend(f"- {item.author_name}: {item.text}" for item in recent)
        lines.append(f"{message.author_name} says:")
    return "\n".join(lines) + f"\n{text}"


class Runtime:
    """Hands every normalized event to the one agent runtime."""

    def __init__(
        self,
        *,
        agent: Agent,
        core: CoreMemory,
        working: WorkingMemory,
        recall: RecallMemory,
        archival: ArchivalMemory,
        audit: AuditLog,
        locks: AgentLocks,
        max_message_chars: int,
        activity: ActivityLog | None = None,
        planner: HeartbeatPlanner | None = None,
        outage: OutageBridge | None = None,
    ) -> None:
        self._agent = agent
        self._core = core
        self._working = working
        self._recall = recall
        self._archival = archival
        self._audit = audit
        self._locks = locks
        self._max_chars = max_message_chars
        self._activity = activity
        self._planner = planner
        self.outage = outage  # journals messages while the memory store is unreachable (bot.outage)

    @asynccontextmanager
    async def agent_lock(self, agent: AgentKey) -> AsyncIterator[None]:
        """Exclusive use of one agent: turns, heartbeats and admin resets all take this."""
        async with self._locks.hold(agent):
            yield

    async def handle(self, message: InboundMessage, sink: ReplySink) -> TurnReport | None:
        """Answer one user message. Returns None when the message was rejected before the model was asked, or
        kept in the outage journal to be answered when the memory store is back."""
        outage = self.outage
        if outage is not None and outage.backlogged:  # older journaled messages go first
            await outage.hold(message, sink, self.handle, outage=False)
            return None
        tracked = TrackedSink(sink) if outage is not None else sink
        try:
            return await self._handle(message, tracked)
        except Exception as exc:
            if outage is None or not outage.covers(exc, tracked):
                raise
            await outage.hold(message, sink, self.handle)
            return None

    async def _handle(self, message: InboundMessage, sink: ReplySink) -> TurnReport | None:
        text = message.text.strip()
        if not text:
            await sink.send(OutboundReply(EMPTY_NOTICE, ReplyKind.NOTICE, message.message_id))
            return None
        model_text = text
        if len(text) > self._max_chars:
            model_text = (
                text[: self._max_chars] + f"\n[system] This message was cut from {len(text)} to {self._max_chars} "
                "characters; the full text is stored in recall memory."
            )
            await sink.send(
                OutboundReply(
                    f"Your message is {len(text):,} characters long; I read the first {self._max_chars:,}. "
                    "The whole text is saved in my memory.",
                    ReplyKind.NOTICE,
                    message.message_id,
                )
            )
        agent = message.agent_key
        cause = event_cause(message.platform, message.message_id)
        async with self.agent_lock(agent):
            await self._ensure_core(agent, cause)
            # recall first: whatever reached the queue is then always in recall too (a crash between loses nothing)
            await self._recall.add([self._recall_entry(message, "user", text, message.author_name)])
            packed = ChatMessage("user", pack_user_message(message, model_text), private=message.scope is Scope.PRIVATE)
            await self._working.append(agent, [packed])
            await self._note_activity(message)

            async def send(reply: str) -> None:
                await sink.send(OutboundReply(reply, ReplyKind.MESSAGE, message.message_id))
                await self._recall.add([self._recall_entry(message, "assistant", reply, "membot")])

            ctx = ToolContext(agent, message.scope, self._core, self._recall, self._archival, self._audit, send, cause)
            try:
                async with sink.typing():
                    report = await self._agent.run_turn(ctx, expects_reply=True)
            except ModelError as exc:
                log.warning("model unavailable; turn abandoned", extra={"agent": str(agent), "error": str(exc)[:200]})
                await sink.send(OutboundReply(MODEL_DOWN_NOTICE, ReplyKind.NOTICE, message.message_id))
                return None
        log.info(
            "turn done",
            extra={"agent": str(agent), "steps": report.steps, "sent": report.messages_sent},
        )
        return report

    async def run_event(
        self,
        agent: AgentKey,
        text: str,
        *,
        scope: Scope,
        send: Callable[[str], Awaitable[None]],
        cause: str,
        archival_source: str = "agent",
    ) -> TurnReport:
        """Wake ``agent`` with a system event (a heartbeat). The caller must hold ``agent_lock(agent)``.

        The event joins the queue as a ``[system]`` message but not recall (it is not part of the conversation);
        no reply is expected, and ``send`` decides what becomes of a ``send_message``. Memory writes are recorded
        with ``cause``. Raises ModelError.
        """
        await self._ensure_core(agent, cause)
        await self._working.append(agent, [ChatMessage("user", f"[system] {text}", private=scope is Scope.PRIVATE)])
        ctx = ToolContext(
            agent,
            scope,
            self._core,
            self._recall,
            self._archival,
            self._audit,
            send,
            cause,
            archival_source=archival_source,
        )
        report = await self._agent.run_turn(ctx, expects_reply=False)
        log.info("event done", extra={"agent": str(agent), "steps": report.steps, "sent": report.messages_sent})
        return report

    async def _ensure_core(self, agent: AgentKey, cause: str) -> None:
        await self._core.ensure(agent, {"persona": load_prompt("persona"), "human": load_prompt("human")}, cause=cause)

    async def _note_activity(self, message: InboundMessage) -> None:
        """Record when and where the user spoke, and let the scheduler plan the next reflection."""
        at = utc_now()
        if self._activity is not None:
            await self._activity.record_message(message.agent_key, message.address, at)
        if self._planner is not None:
            await self._planner.conversation_active(message.agent_key, at)

    @staticmethod
    def _recall_entry(message: InboundMessage, role: str, text: str, author: str) -> RecallEntry:
        timestamp = message.timestamp if role == "user" else utc_now()
        return RecallEntry(
            agent=message.agent_key,
            role=role,
            text=text,
            timestamp=timestamp,
            author=author,
            platform=message.platform,
            channel=message.channel_id,
            scope=message.scope,
            message_id=message.message_id if role == "user" else None,
        )
