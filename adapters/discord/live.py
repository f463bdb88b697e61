"""A reply shown on Discord while the model writes it: sent once, then edited in place (``Message.edit``).

The first message replies to the user's message, as a plain reply's first part does; when the text passes 2,000
characters the next message starts, at the split points ``split.split_message`` uses (code fences closed and
reopened). Edits come at most every ``LIVE_INTERVAL`` seconds (Discord limits message edits per channel;
discord.py waits out a 429 itself). The final edit makes every message exactly what a plain send would have posted
and removes messages the finished reply does not need. Mentions follow the same ``allowed_mentions`` as a plain
send.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.split import split_message
from bot.core.events import OutboundReply

__all__ = ["LIVE_INTERVAL", "DiscordLiveReply"]

log = logging.getLogger(__name__)

LIVE_INTERVAL = 1.2  # seconds between two edits of one message


class DiscordLiveReply:
    """One growing reply to ``message`` in its channel (``bot.core.ports.LiveReply``), pinging only ``allowed``."""

    def __init__(self, message: discord.Message, allowed: discord.AllowedMentions) -> None:
        self._to = message
        self._allowed = allowed
        self._sent: list[discord.Message] = []
        self._texts: list[str] = []

    async def show(self, text: str) -> None:
        for index, piece in enumerate(split_message(text)):
            if index >= len(self._sent):
                await self._append(piece)
            elif piece != self._texts[index]:
                await self._edit(index, piece)  # a message deleted meanwhile is put right by ``finish``

    async def finish(self, reply: OutboundReply) -> None:
        pieces = split_message(reply.text)
        try:
            for index, piece in enumerate(pieces):
                if index >= len(self._sent):
                    await self._append(piece)
                elif piece != self._texts[index] and not await self._edit(index, piece):
                    await self._resend_from(index, pieces)  # deleted meanwhile (a moderator): the rest, in order
                    break
        except discord.HTTPException as exc:
            log.warning(
                "could not deliver a reply on Discord",
                extra={"channel": self._to.channel.id, "status": exc.status, "code": exc.code},
            )
            return
        for message in self._sent[len(pieces) :]:
            await self._delete(message)
        del self._sent[len(pieces) :], self._texts[len(pieces) :]

    async def discard(self) -> None:
        for message in self._sent:
            await self._delete(message)
        self._sent, self._texts = [], []

    async def _append(self, piece: str) -> None:
        self._sent.append(await self._send(piece))
        self._texts.append(piece)

    async def _edit(self, index: int, piece: str) -> bool:
        """Edit one shown message; False when it is gone."""
        try:
            self._sent[index] = await self._sent[index].edit(content=piece, allowed_mentions=self._allowed)
        except discord.NotFound:
            return False
        self._texts[index] = piece
        return True

    async def _resend_from(self, index: int, pieces: list[str]) -> None:
        """Send ``pieces[index:]`` as new messages, after removing the shown ones from ``index`` on."""
        for message in self._sent[index:]:
            await self._delete(message)
        del self._sent[index:], self._texts[index:]
        for piece in pieces[index:]:
            await self._append(piece)

    async def _send(self, piece: str) -> discord.Message:
        """One more message; the first replies to the user's message."""
        channel = self._to.channel
        if not self._sent:
            reference = self._to.to_reference(fail_if_not_exists=False)
            return await channel.send(piece, reference=reference, allowed_mentions=self._allowed)
        return await channel.send(piece, allowed_mentions=self._allowed)

    async def _delete(self, message: discord.Message) -> None:
        try:
            await message.delete()
        except discord.NotFound:
            pass  # already gone
        except discord.HTTPException as exc:
            log.warning("could not remove a reply preview", extra={"status": exc.status, "code": exc.code})
