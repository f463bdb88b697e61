"""A reply shown on Slack while the model writes it: posted once, then edited in place with chat.update.

The first piece takes over the interim "thinking" message when one was posted (no message appears and vanishes);
an answer longer than one Slack message continues in the next messages, cut as ``format_reply`` cuts a plain reply.
Updates come at most about once a second (the runtime's ``live_interval``; chat.update is Tier 3, ~50 a minute);
a ``ratelimited`` answer pauses them for its Retry-After. The final update makes every message exactly what a plain
send would have posted, and removes messages the finished reply does not need.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.core.events import OutboundReply

from .mrkdwn import format_reply

if TYPE_CHECKING:
    from .sink import SlackSink

__all__ = ["LIVE_INTERVAL", "SlackLiveReply"]

log = logging.getLogger(__name__)

LIVE_INTERVAL = 1.0  # seconds between two updates of one message
MAX_WAIT = 10.0  # the longest Retry-After the final update waits for
GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def _retry_after(exc: SlackApiError) -> float:
    try:
        return max(float(exc.response.headers.get("Retry-After", 1)), 0.0)
    except (TypeError, ValueError):
        return 1.0


class SlackLiveReply:
    """One growing reply in the sink's conversation (``bot.core.ports.LiveReply``)."""

    def __init__(self, sink: SlackSink) -> None:
        self._sink = sink
        self._ts: list[str] = []
        self._texts: list[str] = []
        self._quiet_until = 0.0

    async def show(self, text: str) -> None:
        if time.monotonic() < self._quiet_until:
            return  # rate limited: the next show (or the final update) catches up
        try:
            for index, piece in enumerate(format_reply(text)):
                if index >= len(self._ts):
                    await self._post(piece, claim=index == 0)
                elif piece != self._texts[index]:
                    await self._update(index, piece)
        except SlackApiError as exc:
            if exc.response.get("error") == "ratelimited":
                self._quiet_until = time.monotonic() + _retry_after(exc)
            raise

    async def finish(self, reply: OutboundReply) -> None:
        pieces = format_reply(reply.text)
        try:
            for index, piece in enumerate(pieces):
                if index >= len(self._ts):
                    await self._post(piece, claim=False)
                elif piece != self._texts[index] and not await self._final_update(index, piece):
                    await self._repost_from(index, pieces)  # keeps the pieces in order
                    break
        except SlackApiError as exc:  # the user cannot be reached; the turn goes on (as a failed send)
            log.warning("slack reply failed", extra={"channel": self._sink.channel, "error": exc.response.get("error")})
            return
        for ts in self._ts[len(pieces) :]:
            await self._delete(ts)
        del self._ts[len(pieces) :], self._texts[len(pieces) :]

    async def discard(self) -> None:
        for ts in self._ts:
            await self._delete(ts)
        self._ts, self._texts = [], []

    async def _post(self, piece: str, *, claim: bool) -> None:
        working = self._sink.claim_working() if claim else None
        if working is not None:
            await self._sink.client.chat_update(channel=self._sink.channel, ts=working, text=piece)
            ts = working
        else:
            ts = await self._sink.post(piece)
        self._ts.append(ts)
        self._texts.append(piece)

    async def _update(self, index: int, piece: str) -> None:
        await self._sink.client.chat_update(channel=self._sink.channel, ts=self._ts[index], text=piece)
        self._texts[index] = piece

    async def _final_update(self, index: int, piece: str) -> bool:
        """``_update``, waiting out a rate limit (the end must land); False when the message is gone (deleted
        meanwhile) or stays limited."""
        for _ in range(3):
            try:
                await self._update(index, piece)
                return True
            except SlackApiError as exc:
                error = exc.response.get("error")
                if error in GONE:
                    return False
                if error != "ratelimited":
                    raise
                await asyncio.sleep(min(_retry_after(exc), MAX_WAIT))
        return False

    async def _repost_from(self, index: int, pieces: list[str]) -> None:
        """Post ``pieces[index:]`` as new messages, after removing the shown ones from ``index`` on."""
        for ts in self._ts[index:]:
            await self._delete(ts)
        del self._ts[index:], self._texts[index:]
        for piece in pieces[index:]:
            await self._post(piece, claim=False)

    async def _delete(self, ts: str) -> None:
        try:
            await self._sink.client.chat_delete(channel=self._sink.channel, ts=ts)
        except SlackApiError as exc:
            if exc.response.get("error") != "message_not_found":  # else already gone
                log.warning("could not remove a reply preview", extra={"error": exc.response.get("error")})
