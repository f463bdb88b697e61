"""Delivering a reminder the user asked for (``schedule_reminder``) when its time comes.

The text goes to where the user last spoke, through that platform's adapter (``send_direct``, as proactive
messages do), and is stored in recall as membot's message. Unlike proactive messages, reminders do not need the
proactive opt-in and ignore quiet hours and the daily cap: the user asked for them, at that time.

A reminder whose time passed while no membot process ran is delivered late, with a note saying when it was due, up
to ``MISFIRE_GRACE`` after its time; later than that it is dropped (logged), since a reminder that late would only
confuse. When the platform cannot be reached (no process is connected to it, or it refused the message) delivery is
tried again every ``RETRY_EVERY`` within the same grace. ``bot/ops/reminders.py`` says how it is delivered at least
once, and once unless a process dies while sending.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.core.events import AgentKey, ReplyAddress, Scope, utc_now
from bot.core.memory_types import RecallEntry, Reminder
from bot.core.ports import PlatformAdapter, RecallMemory
from bot.core.prompts import load_prompt
from bot.runtime.heartbeat_ports import HeartbeatActivity

log = logging.getLogger(__name__)

MISFIRE_GRACE = timedelta(hours=24)  # a reminder is still delivered up to this long after its time
LATE_AFTER = timedelta(minutes=2)  # delivered later than this after its time: the message says it is late
RETRY_EVERY = timedelta(minutes=5)  # the platform could not be reached: try again after this
PRIVATE_ELSEWHERE = (
    "⏰ I have a reminder for you that you set in a direct message (due {due}). Message me directly and I'll tell "
    "you what it is."
)


class Delivery(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # not delivered now; try again at ``retry_at``
    DROPPED = "dropped"  # never delivered: too late, or the user has no known place to reach them


@dataclass(frozen=True)
class DeliveryOutcome:
    status: Delivery
    retry_at: datetime | None = None
    reason: str = ""


def reminder_message(reminder: Reminder, now: datetime) -> str:
    """What the user reads: the reminder, and when it is late, when it was due."""
    text = f"⏰ Reminder: {reminder.text}"
    if now - reminder.due > LATE_AFTER:
        text += f"\n(This was due at {reminder.local_due()}; membot could not send it on time.)"
    return text


# Puts a note in the agent's queue (``Runtime.note_sent``): (agent, text, private=...)
QueueNote = Callable[..., Awaitable[None]]


class ReminderDelivery:
    """Sends due reminders where their users last spoke (``adapters`` by platform); ``sent`` is told right after a
    send (to mark the reminder delivered); ``note`` puts a line saying so in the agent's queue, so the next turn
    knows what the user may be answering."""

    def __init__(
        self,
        activity: HeartbeatActivity,
        recall: RecallMemory,
        adapters: Mapping[str, PlatformAdapter],
        note: QueueNote | None = None,
        sent: Callable[[Reminder], Awaitable[None]] | None = None,
    ) -> None:
        self._activity = activity
        self._recall = recall
        self._adapters = dict(adapters)
        self._note = note
        self._sent = sent

    async def deliver(self, reminder: Reminder, now: datetime | None = None) -> DeliveryOutcome:
        now = now or utc_now()
        where = {"agent": str(reminder.agent), "reminder": reminder.id}
        if now - reminder.due > MISFIRE_GRACE:
            log.warning("reminder dropped: its time passed too long ago", extra={**where, "due": str(reminder.due)})
            return DeliveryOutcome(Delivery.DROPPED, reason="too late")
        address = (await self._activity.get(reminder.agent)).address
        if address is None:
            log.warning("reminder dropped: the user has no known place to reach them", extra=where)
            return DeliveryOutcome(Delivery.DROPPED, reason="no address")
        adapter = self._adapters.get(address.platform)
        if adapter is None:
            return self._retry(reminder, now, f"not connected to {address.platform}")
        text = reminder_message(reminder, now)
        shown = text
        if reminder.scope is Scope.PRIVATE and not address.is_dm:  # never show a private reminder in a channel
            shown = PRIVATE_ELSEWHERE.replace("{due}", reminder.local_due())
        try:
            await adapter.send_direct(address, shown)
        except Exception as exc:
            log.warning("reminder not delivered", extra={**where, "error": repr(exc)[:200]})
            return self._retry(reminder, now, "the platform refused it")
        await self._mark_sent(reminder)
        await self._recall.add([_recall_entry(reminder, address, text, shown, now)])
        log.info("reminder delivered", extra={**where, "platform": address.platform})
        await self._queue_note(reminder.agent, reminder, now, private=reminder.scope is Scope.PRIVATE)
        return DeliveryOutcome(Delivery.SENT)

    async def _mark_sent(self, reminder: Reminder) -> None:
        """Right after the send: ``sent`` marks it delivered; if that fails, a later firing may send it again."""
        if self._sent is None:
            return
        try:
            await self._sent(reminder)
        except Exception as exc:
            log.warning("reminder sent but not marked", extra={"agent": str(reminder.agent), "error": repr(exc)[:200]})

    async def _queue_note(self, agent: AgentKey, reminder: Reminder, now: datetime, *, private: bool) -> None:
        """Tell the next turn the reminder went out; a busy agent or a store error only costs the note."""
        if self._note is None:
            return
        when = f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        text = load_prompt("reminder_sent").replace("{when}", when).replace("{text}", reminder.text)
        try:
            await self._note(agent, text, private=private)
        except Exception as exc:  # the reminder itself was delivered: never send it again for this
            log.warning("reminder note not queued", extra={"agent": str(agent), "error": repr(exc)[:200]})

    def _retry(self, reminder: Reminder, now: datetime, reason: str) -> DeliveryOutcome:
        at = now + RETRY_EVERY
        if at - reminder.due > MISFIRE_GRACE:
            log.warning("reminder dropped: undeliverable", extra={"agent": str(reminder.agent), "reason": reason})
            return DeliveryOutcome(Delivery.DROPPED, reason=reason)
        log.info("reminder delivery postponed", extra={"agent": str(reminder.agent), "reason": reason})
        return DeliveryOutcome(Delivery.RETRY, retry_at=at, reason=reason)


def _recall_entry(reminder: Reminder, address: ReplyAddress, text: str, shown: str, now: datetime) -> RecallEntry:
    """The delivered reminder as membot's message; a private one shown only as a pointer stays private."""
    private = reminder.scope is Scope.PRIVATE or address.is_dm
    return RecallEntry(
        reminder.agent,
        "assistant",
        text if shown == text or private else shown,
        now,
        "membot",
        address.platform,
        address.channel_id,
        Scope.PRIVATE if private else Scope.PUBLIC,
    )
