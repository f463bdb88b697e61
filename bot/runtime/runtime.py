"""The runtime: event → agent → sink, one turn at a time per agent.

For each inbound message it takes the agent's lock (a Redis lock that holds across processes; waiters in one
process are served in order), stores the user message in recall (its outbox) and in the queue *before* calling the
model, records the activity heartbeats work from, runs the step loop, and delivers each ``send_message`` to the
sink (shown as it is written where the sink can: ``bot.runtime.live``). A message's images are described once it is
stored, and shown to the model in that turn only (``bot.runtime.user_message``). Heartbeats run in ``run_event``.

Every user turn runs inside one error boundary, ``Runtime._turn_boundary``: whatever fails inside it (a store, a
tool, the lock, the model, a bug) ends that turn with one short notice to the user and a logged traceback, and
never reaches the adapter or the process; the message was stored before the model was asked, so it is kept.
``run_event`` has its own boundary (``_event_boundary``): a failure is logged and leaves only as ``ModelError`` or
``EventFailed``. Both run under a deadline (``turn_timeout``) that bounds every model call, retry and step.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.core.agent import Agent, TurnReport
from bot.core.events import AgentKey, InboundMessage, OutboundReply, ReplyKind, Scope, utc_now
from bot.core.memory_types import Fence, LockLost, RecallEntry, event_cause
from bot.core.ports import (
    ActivityRecorder,
    AgentLocks,
    ArchivalMemory,
    AuditLog,
    CoreMemory,
    HeartbeatPlanner,
    RecallMemory,
    Reminders,
    ReplySink,
    WorkingMemory,
)
from bot.core.prompts import load_prompt
from bot.core.tools import ToolContext
from bot.llm.types import ChatMessage, ModelError
from bot.runtime.live import live_preview, tracked
from bot.runtime.outage import OutageBridge
from bot.runtime.user_message import ImageDescriber, MessageImages, image_attachments, model_view, pack_user_message

log = logging.getLogger(__name__)

EMPTY_NOTICE = "Your message was empty, so there is nothing for me to answer."
MODEL_DOWN_NOTICE = (
    "Sorry, I can't reach my language model right now. Your message is saved; please try again in a moment."
)
TURN_TIMEOUT_NOTICE = (
    "Sorry, my language model took too long to answer, so I stopped. Your message is saved; please try again in a "
    "moment."
)
TURN_FAILED_NOTICE = "Sorry, something went wrong on my side while answering. Your message is saved; please try again."
NOT_SAVED_NOTICE = "Sorry, something went wrong on my side and I could not save your message. Please send it again."
NO_REPLY_NOTICE = "Sorry, I couldn't put an answer together this time. Your message is saved; please try again."
BUSY_NOTICE = "I'm still finishing something from before; I'll answer this message as soon as I can."
LOCK_LOST_NOTICE = (
    "Sorry, I lost track of this conversation partway through (another process took it over). Your message is "
    "saved; please send it again if I don't pick it up."
)


class TurnDeadlineExceeded(TimeoutError):
    """The turn's deadline (``turn_timeout``) passed before the agent finished (counted as a "timeout" error)."""


class EventFailed(Exception):
    """A system event (heartbeat) failed for a reason other than the model; its traceback is already logged."""


@dataclass
class _TurnState:
    """What the error boundary needs to know about the turn it ends."""

    stored: bool = False  # the user message is in recall and the queue


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
        activity: ActivityRecorder | None = None,
        planner: HeartbeatPlanner | None = None,
        turn_timeout: float = 90.0,
        outage: OutageBridge | None = None,
        reminders: Reminders | None = None,
        live_replies: bool = True,
        describer: ImageDescriber | None = None,
    ) -> None:
        self._agent = agent
        self._describer = describer  # None: the model cannot see images (bot.runtime.user_message)
        self._core = core
        self._working = working
        self._recall = recall
        self._archival = archival
        self._audit = audit
        self._locks = locks
        self._max_chars = max_message_chars
        self._activity = activity
        self._planner = planner
        self._turn_timeout = turn_timeout
        self._reminders = reminders  # the model's schedule_reminder & co. (None: not offered a store)
        self.outage = outage  # journals messages while the memory store is unreachable (bot.runtime.outage)
        self._live_replies = live_replies  # show replies as they are written, where the sink can

    @property
    def sees_images(self) -> bool:
        """Whether images are shown to the model (adapters download them only then)."""
        return self._describer is not None

    @asynccontextmanager
    async def agent_lock(
        self, agent: AgentKey, *, on_wait: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[Fence]:
        """Exclusive use of one agent: turns, heartbeats and admin resets all take this. Yields the holding's fence
        (pass it to the stores); ``on_wait`` is awaited once if the agent stays busy for a few seconds."""
        async with self._locks.hold(agent, on_wait=on_wait) as fence:
            yield fence

    async def handle(self, message: InboundMessage, sink: ReplySink) -> TurnReport | None:
        """Answer one user message. Returns None when the message was rejected, the turn failed, or the message was
        kept in the outage journal to be answered when the memory store is back.

        Never raises, except on cancellation (and, while the journal is replayed, a store outage: the replay keeps
        the entry): a failure ends the turn inside ``_turn_boundary``.
        """
        text = message.text.strip()
        if not text and not image_attachments(message):
            await self._notify(sink, message, EMPTY_NOTICE)
            return None
        outage = self.outage
        if outage is not None and outage.backlogged:  # older journaled messages go first
            await outage.hold(message, sink, self.handle, outage=False)
            return None
        tracked_sink = tracked(sink) if outage is not None else sink
        turn = _TurnState()
        async with self._turn_boundary(message, tracked_sink, turn):
            return await self._answer(message, text, tracked_sink, turn)
        return None  # the boundary ended the turn and told the user

    @asynccontextmanager
    async def _turn_boundary(self, message: InboundMessage, sink: ReplySink, turn: _TurnState) -> AsyncIterator[None]:
        """The one error boundary of a user turn: any exception ends it with one notice and a log line, or, when
        the memory store is unreachable, puts the message in the outage journal (answered once the store is back).

        To handle a new kind of failure, add it to ``_failure_notice``. ``turn.stored`` says whether the message
        reached recall and the queue before the failure.
        """
        try:
            yield
        except Exception as exc:
            if not await self._journaled(exc, message, sink):
                await self._notify(sink, message, self._failure_notice(exc, message, turn))

    async def _journaled(self, exc: Exception, message: InboundMessage, sink: ReplySink) -> bool:
        """Whether a store outage ended the turn without a notice: the message went to the journal, or the user
        already had the answer (a replay would answer twice). While the journal is replayed the outage is raised
        instead, so the replay keeps the entry and tries it again later."""
        outage = self.outage
        if outage is None or not outage.is_outage(exc):
            return False
        if outage.replaying:
            raise exc
        if not outage.covers(exc, sink):  # the user already has an answer: a replay would answer twice
            log.warning(
                "memory store unreachable after the answer was sent; the rest of the turn was not stored",
                extra={"agent": str(message.agent_key), "message_id": message.message_id},
            )
            return True
        await outage.hold(message, sink, self.handle)
        return True

    def _failure_notice(self, exc: Exception, message: InboundMessage, turn: _TurnState) -> str:
        """Log a failed turn and pick the notice its user gets (most specific failure first)."""
        where = {"agent": str(message.agent_key), "message_id": message.message_id, "stored": turn.stored}
        if isinstance(exc, TurnDeadlineExceeded):
            log.warning("turn deadline passed; turn abandoned", extra={**where, "seconds": self._turn_timeout})
            self._record_failure(exc)
            return TURN_TIMEOUT_NOTICE
        if isinstance(exc, ModelError):  # counted in metrics where the model was called
            log.warning("model unavailable; turn abandoned", extra={**where, "error": str(exc)[:200]})
            return MODEL_DOWN_NOTICE
        if isinstance(exc, LockLost):  # another process took the agent over: this turn writes nothing more
            log.warning("turn stopped: lock lost", extra={**where, "error": str(exc)[:200]})
            return LOCK_LOST_NOTICE
        log.error("turn failed", extra=where, exc_info=exc)
        self._record_failure(exc)
        return TURN_FAILED_NOTICE if turn.stored else NOT_SAVED_NOTICE

    async def _answer(self, message: InboundMessage, text: str, sink: ReplySink, turn: _TurnState) -> TurnReport:
        images = MessageImages.of(message, vision=self.sees_images)
        model_text, notices = model_view(text, self._max_chars, images)
        for notice in notices:  # a cut message, images not looked at: the user hears it now, the model in the text
            await self._notify(sink, message, notice)
        agent = message.agent_key
        cause = event_cause(message.platform, message.message_id)

        busy = functools.partial(self._notify, sink, message, BUSY_NOTICE)
        async with self.agent_lock(agent, on_wait=busy) as fence:
            await self._ensure_core(agent, cause, fence)
            entry = self._recall_entry(message, "user", text or images.placeholder(), message.author_name, images)
            packed = ChatMessage(
                "user",
                pack_user_message(message, model_text),
                private=message.scope is Scope.PRIVATE,
                message_id=message.message_id,
            )
            fresh = not await self._already_queued(message)
            if fresh:
                # recall first: whatever reached the queue is then in recall too (a crash between loses nothing)
                await self._recall.add([entry], fence=fence)
                await self._working.append(agent, [packed], fence=fence)
            turn.stored = True
            await self._note_activity(message)

            async with live_preview(sink, enabled=self._live_replies) as live:

                async def send(reply: str) -> None:
                    outbound = OutboundReply(reply, ReplyKind.MESSAGE, message.message_id)
                    await (live.deliver(outbound) if live is not None else sink.send(outbound))
                    await self._recall.add([self._recall_entry(message, "assistant", reply, "membot")], fence=fence)

                ctx = self._tool_context(agent, message.scope, send, cause, fence)
                ctx.preview = live
                async with sink.typing(), self._deadline():
                    if self._describer is not None and images.shown and fresh:
                        await self._describer.store(images, entry, packed, self._recall, self._working, fence)
                    shown = {packed: images.shown} if images.shown else None
                    report = await self._agent.run_turn(ctx, expects_reply=True, images=shown)
        if report.images_refused:
            await self._notify(sink, message, images.refused_notice())
        if report.messages_sent == 0:  # the reply guarantee's last resort: never silent
            log.warning("turn ended without a reply", extra={"agent": str(agent), "steps": report.steps})
            await self._notify(sink, message, NO_REPLY_NOTICE)
        log.info("turn done", extra={"agent": str(agent), "steps": report.steps, "sent": report.messages_sent})
        return report

    async def remember(self, message: InboundMessage) -> bool:
        """Keep a message membot was not asked to answer (a channel in ``listen`` mode) in its author's recall
        memory, with the message's scope: searchable later, no turn and no reply. False when it could not be
        stored (logged: no one is waiting for an answer). Its images are named, not looked at."""
        images = MessageImages.of(message, vision=False)
        text = message.text.strip() or (images.placeholder() if images else "")
        if not text:
            return False
        entry = self._recall_entry(message, "user", text, message.author_name, images)
        try:
            async with self.agent_lock(message.agent_key) as fence:
                await self._recall.add([entry], fence=fence)
        except Exception:
            log.warning("a listened-to message could not be stored", extra={"agent": str(message.agent_key)})
            return False
        return True

    async def _already_queued(self, message: InboundMessage) -> bool:
        """Whether a replayed message is in the queue already (the outage struck its first turn after storing it):
        then it is answered without being stored twice. Only replays are checked (no extra read per turn)."""
        if self.outage is None or not self.outage.replaying or not message.message_id:
            return False
        queued = await self._working.messages(message.agent_key)
        return any(item.role == "user" and item.message_id == message.message_id for item in queued)

    def _tool_context(
        self,
        agent: AgentKey,
        scope: Scope,
        send: Callable[[str], Awaitable[None]],
        cause: str,
        fence: Fence | None,
        archival_source: str = "agent",
    ) -> ToolContext:
        """What the model's functions act on in one turn or event."""
        stores = (self._core, self._recall, self._archival, self._audit)
        return ToolContext(
            agent, scope, *stores, send, cause, archival_source=archival_source, fence=fence, reminders=self._reminders
        )

    async def _run_with_deadline(self, ctx: ToolContext, *, expects_reply: bool) -> TurnReport:
        """The step loop, bounded by ``turn_timeout`` (every model call, retry and step included)."""
        async with self._deadline():
            return await self._agent.run_turn(ctx, expects_reply=expects_reply)

    @asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """Bound the block by ``turn_timeout``; its expiry is raised as ``TurnDeadlineExceeded``."""
        try:
            async with asyncio.timeout(self._turn_timeout) as deadline:
                yield
        except TimeoutError:
            if deadline.expired():
                raise TurnDeadlineExceeded(f"the turn took longer than {self._turn_timeout:g}s") from None
            raise

    @staticmethod
    async def _notify(sink: ReplySink, message: InboundMessage, notice: str) -> None:
        """Send one notice; a sink that fails as well is only logged (the turn is over either way)."""
        try:
            await sink.send(OutboundReply(notice, ReplyKind.NOTICE, message.message_id))
        except Exception:
            log.exception("could not deliver a notice", extra={"agent": str(message.agent_key)})

    def _record_failure(self, exc: BaseException) -> None:
        """Hook called for every failed turn or event except model errors (``ObservedRuntime`` counts them)."""

    async def run_event(
        self,
        agent: AgentKey,
        text: str,
        *,
        scope: Scope,
        send: Callable[[str], Awaitable[None]],
        cause: str,
        archival_source: str = "agent",
        fence: Fence | None = None,
    ) -> TurnReport:
        """Wake ``agent`` with a system event (a heartbeat). The caller must hold ``agent_lock(agent)`` and pass the
        ``fence`` it yielded.

        The event joins the queue as a ``[system]`` message but not recall (it is not part of the conversation);
        no reply is expected, and ``send`` decides what becomes of a ``send_message``. Memory writes are recorded
        with ``cause``. Raises ModelError (the model failed or the deadline passed) or EventFailed (anything else,
        logged with its traceback); nothing else.
        """
        async with self._event_boundary(agent):
            await self._ensure_core(agent, cause, fence)
            event = ChatMessage("user", f"[system] {text}", private=scope is Scope.PRIVATE)
            await self._working.append(agent, [event], fence=fence)
            ctx = self._tool_context(agent, scope, send, cause, fence, archival_source)
            report = await self._run_with_deadline(ctx, expects_reply=False)
        log.info("event done", extra={"agent": str(agent), "steps": report.steps, "sent": report.messages_sent})
        return report

    async def note_sent(self, agent: AgentKey, text: str, *, private: bool) -> None:
        """Put a ``[system]`` note of something membot sent on its own (a reminder) in the agent's queue, so the
        next turn knows what the user may be answering. Takes the agent's lock (TimeoutError if it stays busy)."""
        async with self.agent_lock(agent) as fence:
            note = ChatMessage("user", f"[system] {text}", private=private)
            await self._working.append(agent, [note], fence=fence)

    @asynccontextmanager
    async def _event_boundary(self, agent: AgentKey) -> AsyncIterator[None]:
        """The error boundary of a system event: only ModelError or EventFailed leave it, after a log line."""
        try:
            yield
        except TurnDeadlineExceeded as exc:
            log.warning("event deadline passed", extra={"agent": str(agent), "seconds": self._turn_timeout})
            raise ModelError(str(exc)) from exc
        except ModelError:
            raise
        except LockLost as exc:  # another process took the agent over: this event writes nothing more
            log.warning("event stopped: lock lost", extra={"agent": str(agent)})
            raise EventFailed("the agent's lock was lost during a system event") from exc
        except Exception as exc:
            log.exception("event failed", extra={"agent": str(agent)})
            self._record_failure(exc)
            raise EventFailed(f"{type(exc).__name__} in a system event") from exc

    async def _ensure_core(self, agent: AgentKey, cause: str, fence: Fence | None) -> None:
        defaults = {"persona": load_prompt("persona"), "human": load_prompt("human")}
        await self._core.ensure(agent, defaults, cause=cause, fence=fence)

    async def _note_activity(self, message: InboundMessage) -> None:
        """Record when and where the user spoke, and let the scheduler plan the next reflection."""
        at = utc_now()
        if self._activity is not None:
            await self._activity.record_message(message.agent_key, message.address, at)
        if self._planner is not None:
            await self._planner.conversation_active(message.agent_key, at)

    @staticmethod
    def _recall_entry(
        message: InboundMessage, role: str, text: str, author: str, images: MessageImages | None = None
    ) -> RecallEntry:
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
            attachment_text=images.recall_text() if images else None,
        )
