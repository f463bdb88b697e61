"""Where a turn's words go on Discord: replies to the user's message, split under 2,000 characters, never pinging.

``allowed_mentions`` lets a reply ping only the person membot answers (and not even them through the reply
reference); @everyone, @here, roles and other users are never pinged, whatever the model writes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import discord

from adapters.discord.live import LIVE_INTERVAL, DiscordLiveReply
from adapters.discord.split import split_message
from bot.core.events import OutboundReply

log = logging.getLogger(__name__)


def allowed_mentions_for(user: discord.abc.Snowflake | None) -> discord.AllowedMentions:
    """No @everyone/@here, no roles, no reply ping; at most the one user being answered."""
    users: bool | list[discord.abc.Snowflake] = [user] if user is not None else False
    return discord.AllowedMentions(everyone=False, roles=False, users=users, replied_user=False)


async def send_chunks(
    channel: discord.abc.Messageable,
    text: str,
    *,
    reply_to: discord.Message | None = None,
    mentionable: discord.abc.Snowflake | None = None,
) -> list[discord.Message]:
    """Send ``text`` as one or more messages; the first one replies to ``reply_to`` when given."""
    allowed = allowed_mentions_for(mentionable)
    sent: list[discord.Message] = []
    for index, chunk in enumerate(split_message(text)):
        if index == 0 and reply_to is not None:
            reference = reply_to.to_reference(fail_if_not_exists=False)
            sent.append(await channel.send(chunk, reference=reference, allowed_mentions=allowed))
        else:
            sent.append(await channel.send(chunk, allowed_mentions=allowed))
    return sent


class DiscordReplySink:
    """ReplySink for one inbound Discord message: answers in its channel, as a reply to it; shows long answers
    as they grow (``live_reply``, ``adapters/discord/live.py``)."""

    live_interval = LIVE_INTERVAL

    def __init__(self, message: discord.Message) -> None:
        self._message = message

    def live_reply(self) -> DiscordLiveReply:
        return DiscordLiveReply(self._message, allowed_mentions_for(self._message.author))

    async def send(self, reply: OutboundReply) -> None:
        """Deliver one reply. A delivery failure is logged, not raised, so the turn and its memory stay whole."""
        try:
            await send_chunks(
                self._message.channel, reply.text, reply_to=self._message, mentionable=self._message.author
            )
        except discord.HTTPException as exc:
            log.warning(
                "could not deliver a reply on Discord",
                extra={"channel": self._message.channel.id, "status": exc.status, "code": exc.code},
            )

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """The typing indicator while the agent thinks; a channel that refuses it just shows none."""
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._message.channel.typing())
            except discord.HTTPException as exc:
                log.debug("no typing indicator", extra={"channel": self._message.channel.id, "status": exc.status})
            yield
