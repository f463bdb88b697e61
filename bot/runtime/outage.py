"""Bridging a memory-store outage: messages that cannot be stored are journaled, the user is told once, and the
journal is replayed in order through the normal runtime path when the store answers again.

The runtime hands a message here (``hold``) when its turn failed because the store (Redis) stayed unreachable past
its client's retry budget, and also while older journaled messages wait, so nothing overtakes them. The first
held message of a conversation in an outage gets one notice; the rest are kept quietly. A background task probes
the store with backoff and replays each entry through ``answer`` (the runtime's ``handle``), marking it done only
after its turn finished. Answers go to the sink the message came with while this process still has it; entries a
stopped process left (adopted by the journal at start) go to ``fallback(message)``: the platform adapter's
address-based send, or the console. What is an outage is decided by ``is_outage`` (the composition root knows the
store's error types; ``bot/`` does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from bot.core.events import InboundMessage, OutboundReply, ReplyAddress, ReplyKind
from bot.core.ports import (
    ChannelMode,
    ChannelModes,
    CheckIn,
    JournalEntry,
    MessageJournal,
    PlatformAdapter,
    ReplySink,
    Throttle,
)
from bot.core.tasks import cancel_requested, stop_task

__all__ = [
    "STORE_DOWN_NOTICE",
    "AddressSink",
    "OutageBridge",
    "OutageTolerantChannelModes",
    "OutageTolerantThrottle",
    "TrackedSink",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

STORE_DOWN_NOTICE = (
    "I can't reach my memory right now. Your message is saved, and I'll answer it as soon as my memory is back."
)
REPLAY_FAILED_NOTICE = "Sorry, something went wrong while answering your earlier message."

Answer = Callable[[InboundMessage, ReplySink], Awaitable[object]]
Fallback = Callable[[InboundMessage], ReplySink | None]
_REPLAYING: contextvars.ContextVar[bool] = contextvars.ContextVar("membot_replaying", default=False)


class AddressSink:
    """A sink for a replayed message whose original sink is gone: the adapter's address-based send."""

    def __init__(self, adapter: PlatformAdapter, address: ReplyAddress) -> None:
        self._adapter = adapter
        self._address = address

    async def send(self, reply: OutboundReply) -> None:
        await self._adapter.send_direct(self._address, reply.text)

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        yield


class TrackedSink:
    """A sink that remembers whether the agent's words reached the user (then a failed turn is not replayed:
    the user would get a second answer)."""

    def __init__(self, sink: ReplySink) -> None:
        self._sink = sink
        self.replied = False

    async def send(self, reply: OutboundReply) -> None:
        await self._sink.send(reply)
        if reply.kind is ReplyKind.MESSAGE:
            self.replied = True

    def typing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._sink.typing()


class OutageBridge:
    """Journal, notify once, replay in order (see the module docstring)."""

    def __init__(
        self,
        journal: MessageJournal,
        *,
        is_outage: Callable[[BaseException], bool],
        probe: Callable[[], Awaitable[object]],
        first_wait: float = 0.5,
        max_wait: float = 5.0,
    ) -> None:
        self._journal = journal
        self._is_outage = is_outage
        self._probe = probe
        self._first_wait = first_wait
        self._max_wait = max_wait
        self._sinks: dict[str, ReplySink] = {}
        self._notified: set[tuple[str, str]] = set()
        self._backlog = 0
        self._store_back = False  # the replay found the store answering (queued messages need no notice then)
        self._down = False  # an outage seen outside a turn (admission checks), until a probe answers
        self._answer: Answer | None = None
        self._fallback: Fallback = lambda message: None
        self._task: asyncio.Task[None] | None = None
        self._on_recovered: list[Callable[[], Awaitable[None]]] = []
        self.replayed = 0  # entries answered from the journal (for tests and logs)

    @property
    def backlogged(self) -> bool:
        """Whether a new message must go to the journal: older journaled messages wait, or the store is known to
        be down. False while replaying."""
        return (self._backlog > 0 or self._down) and not _REPLAYING.get()

    def mark_down(self) -> None:
        """The store failed outside a turn (e.g. a rate-limit check): send messages straight to the journal, and
        probe the store until it answers."""
        self._down = True
        self._store_back = False
        self._kick()

    def on_recovered(self, flush: Callable[[], Awaitable[None]]) -> None:
        """Call ``flush`` each time an outage is over (the journal is replayed): state kept in the process during
        the outage is written then, not only when it is next used. A failing flush is logged."""
        self._on_recovered.append(flush)

    @property
    def replaying(self) -> bool:
        """Whether the current task is replaying a journaled message (its outage is raised, not held)."""
        return _REPLAYING.get()

    def is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the store is unreachable."""
        return self._is_outage(exc)

    def covers(self, exc: BaseException, sink: ReplySink) -> bool:
        """Whether the turn that raised ``exc`` should be journaled: the store is unreachable and the user has not
        been answered yet (``sink`` is the ``TrackedSink`` the turn ran with)."""
        replied = isinstance(sink, TrackedSink) and sink.replied
        return not replied and not _REPLAYING.get() and self._is_outage(exc)

    async def start(self, answer: Answer, fallback: Fallback | None = None) -> int:
        """Replay (in the background) what a stopped process left; returns how many entries wait.

        ``answer`` is the runtime's ``handle``; ``fallback`` gives a sink for an entry whose own sink is gone.
        """
        self._answer = answer
        if fallback is not None:
            self._fallback = fallback
        self._backlog = len(await self._journal.pending())
        if self._backlog:
            log.warning("%d messages wait in the journal; answering them once the memory store answers", self._backlog)
            self._kick()
        return self._backlog

    async def hold(self, message: InboundMessage, sink: ReplySink, answer: Answer, *, outage: bool = True) -> None:
        """Journal ``message`` (durably), tell its conversation once per outage, and make sure replay runs.

        ``outage``: its turn failed on the store (False: it only queues behind journaled messages)."""
        self._answer = answer
        if outage:
            self._store_back = False
        self._backlog += 1
        try:
            entry_id = await self._journal.append(message)
        except BaseException:
            self._backlog -= 1
            raise
        self._sinks[entry_id] = sink
        log.warning("memory store unreachable: message journaled", extra={"agent": str(message.agent_key)})
        conversation = (str(message.agent_key), message.channel_id)
        if conversation not in self._notified and (outage or not self._store_back):
            self._notified.add(conversation)
            with contextlib.suppress(Exception):  # the message is safe; a failed notice must not lose it
                await sink.send(OutboundReply(STORE_DOWN_NOTICE, ReplyKind.NOTICE, message.message_id))
        self._kick()

    async def wait_replayed(self) -> None:
        """Until the journal is empty (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop replaying and close the journal (what is left stays in it for the next start)."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task, within=5.0)
        self._journal.close()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._replay(), name="journal-replay")

    async def _replay(self) -> None:
        _REPLAYING.set(True)  # this task's context only
        wait = self._first_wait
        while not cancel_requested() and ((entries := await self._journal.pending()) or self._down):
            if not await self._store_answers():
                await asyncio.sleep(wait)
                wait = min(self._max_wait, wait * 2)
                continue
            wait = self._first_wait
            self._down = False
            self._store_back = True
            for entry in entries:
                if not await self._replay_one(entry):
                    self._store_back = False
                    break  # the store went away again: wait for it, then go on from this entry
        self._notified.clear()  # the outage is over: a new one notifies again
        log.info("journal replayed", extra={"replayed": self.replayed})
        for flush in self._on_recovered:
            try:
                await flush()
            except Exception:
                log.warning("state kept during the outage could not be written yet", exc_info=True)

    async def _store_answers(self) -> bool:
        try:
            await self._probe()
        except Exception:
            return False
        return True

    async def _replay_one(self, entry: JournalEntry) -> bool:
        """Answer one entry; False when the store went away again (the entry stays)."""
        assert self._answer is not None
        sink = self._sinks.get(entry.id) or self._fallback(entry.message) or _NullSink()
        try:
            await self._answer(entry.message, sink)
        except Exception as exc:
            if self._is_outage(exc):
                return False
            log.exception("a journaled message could not be answered", extra={"agent": str(entry.message.agent_key)})
            with contextlib.suppress(Exception):
                await sink.send(OutboundReply(REPLAY_FAILED_NOTICE, ReplyKind.NOTICE, entry.message.message_id))
        await self._journal.done(entry.id)
        self._sinks.pop(entry.id, None)
        self._backlog = max(0, self._backlog - 1)
        self.replayed += 1
        return True


class OutageTolerantThrottle:
    """The adapters' admission checks (dedupe, rate limit) during a store outage: they let the message through
    (fail open) so that it reaches the runtime and its journal instead of being lost; the only cost is that a
    platform's redelivery during the outage may be answered twice. While the store is known to be down they do not
    even ask it (no retry budget spent per message)."""

    def __init__(self, throttle: Throttle, bridge: OutageBridge) -> None:
        self._throttle = throttle
        self._bridge = bridge

    async def allow(self, person: str, per_minute: int) -> bool:
        return await self._or_open(self._throttle.allow(person, per_minute), True)

    async def first_time(self, person: str, event_id: str, ttl_seconds: int = 86_400) -> bool:
        return await self._or_open(self._throttle.first_time(person, event_id, ttl_seconds), True)

    async def check_in(self, person: str, event_ids: Sequence[str], per_minute: int) -> CheckIn:
        return await self._or_open(self._throttle.check_in(person, event_ids, per_minute), CheckIn(True, True))

    async def export(self, person: str) -> list[str]:
        return await self._throttle.export(person)

    async def erase(self, person: str) -> int:
        return await self._throttle.erase(person)

    async def _or_open(self, check: Coroutine[Any, Any, T], open_answer: T) -> T:
        if self._bridge.backlogged:
            check.close()
            return open_answer
        try:
            return await check
        except Exception as exc:
            if not self._bridge.is_outage(exc):
                raise
            log.warning("memory store unreachable: admission check skipped")
            self._bridge.mark_down()
            return open_answer


class OutageTolerantChannelModes:
    """Channel reply modes during a store outage, so that a message decided by its channel's mode still reaches
    the runtime and its journal: a read answers what this process last read or wrote for the channel (the default
    mode, "mention", for one it never saw), a write is kept in-process and written as soon as the outage is over.
    While the store is known to be down the store is not asked (no retry budget spent per message)."""

    DEFAULT = ChannelMode.MENTION.value

    def __init__(self, modes: ChannelModes, bridge: OutageBridge, *, max_channels: int = 10_000) -> None:
        self._modes = modes
        self._bridge = bridge
        self._max = max_channels
        self._known: dict[tuple[str, str], str] = {}  # the last mode read or written, per channel (bounded)
        self._unwritten: dict[tuple[str, str], str] = {}  # writes made during the outage, written when it ends
        bridge.on_recovered(self._write_unwritten)

    async def get(self, platform: str, channel_id: str) -> str:
        channel = (platform, channel_id)
        if not self._bridge.backlogged:
            try:
                await self._write_unwritten()
                mode = await self._modes.get(platform, channel_id)
            except Exception as exc:
                self._down_or_raise(exc)
            else:
                self._remember(channel, mode)
                return mode
        return self._unwritten.get(channel) or self._known.get(channel, self.DEFAULT)

    async def set(self, platform: str, channel_id: str, mode: str) -> None:
        mode = ChannelMode.parse(mode).value  # ValueError naming the modes
        channel = (platform, channel_id)
        if not self._bridge.backlogged:
            try:
                await self._write_unwritten()
                await self._modes.set(platform, channel_id, mode)
            except Exception as exc:
                self._down_or_raise(exc)
            else:
                self._unwritten.pop(channel, None)
                self._remember(channel, mode)
                return
        log.warning("memory store unreachable: channel mode kept in this process until it answers")
        self._unwritten[channel] = mode
        self._remember(channel, mode)

    def _down_or_raise(self, exc: Exception) -> None:
        if not self._bridge.is_outage(exc):
            raise exc
        log.warning("memory store unreachable: channel mode read from this process")
        self._bridge.mark_down()

    async def _write_unwritten(self) -> None:
        while self._unwritten:
            (platform, channel_id), mode = next(iter(self._unwritten.items()))
            await self._modes.set(platform, channel_id, mode)
            self._unwritten.pop((platform, channel_id), None)

    def _remember(self, channel: tuple[str, str], mode: str) -> None:
        self._known.pop(channel, None)
        self._known[channel] = mode
        while len(self._known) > self._max:
            self._known.pop(next(iter(self._known)))


class _NullSink:
    """Where a replayed answer goes when no sink can reach the user any more (it is still stored in recall)."""

    async def send(self, reply: OutboundReply) -> None:
        log.warning("a replayed answer had nowhere to go (its platform is not connected in this process)")

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        yield
