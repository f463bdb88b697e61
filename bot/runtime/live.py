"""Live replies: a ``send_message`` shown while the model writes it, then made exactly the reply it became.

The model reports the growing text of each ``send_message`` (``bot.llm.types.ReplyPreview``); :class:`LivePreview`
turns that into platform messages through a sink that can show a reply as it grows (``bot.core.ports.LiveReplies``):

- a reply that is complete within ``first_after`` seconds is sent whole, as without streaming (one message);
- a longer one is shown from its first sentence (or ``FIRST_CHARS`` characters) on, then updated at most every
  ``sink.live_interval`` seconds (the platform's rate limit) by a task of its own, so the stream is never held up;
- when the function runs, its reply *finishes* the preview showing it: the messages become exactly what a plain
  ``send`` would have posted (formatting and splitting included). A preview no reply claims (the call was rejected,
  or a retried answer differs) is corrected by the next reply or deleted when the turn ends.

What reaches recall and the queue is the final text only, as without streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator

from bot.core.events import OutboundReply, ReplyKind
from bot.core.ports import LiveReplies, LiveReply, ReplySink
from bot.runtime.outage import TrackedSink

__all__ = ["FIRST_CHARS", "LivePreview", "TrackedLiveSink", "live_preview", "tracked"]

log = logging.getLogger(__name__)

FIRST_CHARS = 120  # shown from this many characters even without a sentence end
_MIN_CHARS = 12
_SENTENCE_END = re.compile(r"[.!?…:](\s|$)|\n")


def ready_to_show(text: str) -> bool:
    """Whether a reply's beginning is worth showing: a first sentence or line, or enough characters."""
    stripped = text.strip()
    return len(stripped) >= FIRST_CHARS or (len(stripped) >= _MIN_CHARS and bool(_SENTENCE_END.search(stripped)))


class _Slot:
    """One reply being shown: its latest text and the task that shows it, throttled."""

    def __init__(self, live: LiveReply, interval: float, first_after: float) -> None:
        self.live = live
        self.text = ""
        self.shown = False  # something may have reached the platform (then ``finish`` edits it)
        self.finished = False
        self._interval = interval
        self._not_before = time.monotonic() + first_after
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def set(self, text: str) -> None:
        self.text = text
        self._changed.set()

    async def _run(self) -> None:
        last = ""
        await self._pause(self._not_before - time.monotonic())
        while not self._stopping.is_set():
            text = self.text
            if text != last and ready_to_show(text):
                self.shown = True  # set first: a show that fails halfway may have posted part (finishing sorts it)
                try:
                    await self.live.show(text)
                except Exception as exc:  # a preview is a courtesy: it never fails the turn
                    log.debug("could not show a reply preview", extra={"error": repr(exc)[:200]})
                last = text
                await self._pause(self._interval)
                continue
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            stopper = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        """Stop showing; an update already on its way completes first (so nothing older lands after the end)."""
        self.finished = True
        self._stopping.set()
        await self._task


class LivePreview:
    """The ``ReplyPreview`` of one user turn, showing each ``send_message`` through ``sink`` as it grows."""

    tool = "send_message"
    argument = "message"

    def __init__(self, sink: LiveReplies, *, first_after: float = 1.0) -> None:
        self._sink = sink
        self._first_after = first_after
        self._slots: list[_Slot] = []
        self._current: dict[int, _Slot] = {}  # this attempt's calls → the slot showing them
        self._reusable: list[_Slot] = []  # open slots of earlier attempts, taken over in order

    def restart(self) -> None:
        self._current = {}
        self._reusable = [slot for slot in self._slots if not slot.finished]

    def grow(self, index: int, text: str) -> None:
        slot = self._current.get(index)
        if slot is None:
            if self._reusable:
                slot = self._reusable.pop(0)
            else:
                slot = _Slot(self._sink.live_reply(), self._sink.live_interval, self._first_after)
                self._slots.append(slot)
            self._current[index] = slot
        slot.set(text)

    async def deliver(self, reply: OutboundReply) -> None:
        """Send ``reply``: finish the preview showing it (the open one with its text, else the oldest open one),
        or send it plainly when nothing was shown."""
        open_slots = [slot for slot in self._slots if not slot.finished]
        slot = next((s for s in open_slots if s.text == reply.text), open_slots[0] if open_slots else None)
        if slot is None:
            await self._sink.send(reply)
            return
        await slot.stop()
        if slot.shown:
            await slot.live.finish(reply)
        else:
            await self._sink.send(reply)

    async def close(self) -> None:
        """The turn is over: previews no reply finished are removed (never a half reply left behind)."""
        for slot in self._slots:
            if slot.finished:
                continue
            await slot.stop()
            if slot.shown:
                try:
                    await slot.live.discard()
                except Exception as exc:
                    log.warning("could not remove a reply preview", extra={"error": repr(exc)[:200]})
        self._slots = []
        self._current = {}
        self._reusable = []


@contextlib.asynccontextmanager
async def live_preview(sink: ReplySink, *, enabled: bool) -> AsyncIterator[LivePreview | None]:
    """The LivePreview of one turn when ``enabled`` and ``sink`` can show replies as they grow (else None); at the
    end, previews no reply finished are removed, whatever ended the turn."""
    if not enabled or not isinstance(sink, LiveReplies):
        yield None
        return
    live = LivePreview(sink)
    try:
        yield live
    finally:
        await live.close()


class _TrackedLiveReply:
    """A live reply that marks its TrackedSink as replied once it is finished (a shown preview is not a reply)."""

    def __init__(self, inner: LiveReply, tracked: TrackedSink) -> None:
        self._inner = inner
        self._tracked = tracked

    async def show(self, text: str) -> None:
        await self._inner.show(text)

    async def finish(self, reply: OutboundReply) -> None:
        await self._inner.finish(reply)
        if reply.kind is ReplyKind.MESSAGE:
            self._tracked.replied = True

    async def discard(self) -> None:
        await self._inner.discard()


class TrackedLiveSink(TrackedSink):
    """A TrackedSink over a sink that shows replies as they grow (the outage journal's guarantee holds: the
    user has an answer once a reply was sent or finished, never on a mere preview)."""

    def __init__(self, sink: LiveReplies) -> None:
        super().__init__(sink)
        self._live = sink
        self.live_interval = sink.live_interval

    def live_reply(self) -> LiveReply:
        return _TrackedLiveReply(self._live.live_reply(), self)


def tracked(sink: ReplySink) -> TrackedSink:
    """``sink`` wrapped to remember whether the user got an answer, keeping its live replies if it has them."""
    return TrackedLiveSink(sink) if isinstance(sink, LiveReplies) else TrackedSink(sink)
