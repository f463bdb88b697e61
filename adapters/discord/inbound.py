"""One Discord message through membot: decide, admit (dedupe, rate limit), import attachments, run the turn.

Each message is handled in its own task (discord.py dispatches every event that way), so a slow turn never
holds up others; turns of one agent still run one at a time under the runtime's agent lock.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from adapters.discord.attachments import import_attachments
from adapters.discord.images import fetch_images, image_attachments
from adapters.discord.normalize import (
    PLATFORM,
    Reason,
    addressing_of,
    agent_for,
    answer_reason,
    message_text,
    recent_context,
    to_inbound,
)
from adapters.discord.sink import DiscordReplySink
from adapters.keys import person_of
from bot.core.events import ChannelMessage, OutboundReply, ReplyKind
from bot.runtime.admission import Verdict, admit, tell_once_a_day
from bot.runtime.channels import (
    DEFAULT_MODE,
    NOT_ALLOWED_NOTICE,
    SWITCHED_OFF_NOTICE,
    ChannelMode,
    reach,
)
from bot.runtime.runtime import TURN_FAILED_NOTICE
from bot.services import Services

log = logging.getLogger(__name__)

HISTORY_TIMEOUT_SECONDS = 2.0
HISTORY_LIMIT = 10


class InboundHandler:
    """Turns discord.py messages into runtime turns."""

    def __init__(self, services: Services, client: discord.Client) -> None:
        self._services = services
        self._client = client
        self._history_fetched: set[int] = set()
        self._allowlist = services.settings.allowlist()

    async def channel_mode(self, message: discord.Message) -> str:
        """The reply mode of the message's channel; in a thread, the thread's own mode or else its parent's."""
        modes = self._services.channel_modes
        channel = message.channel
        if isinstance(channel, discord.Thread):
            if await modes.get(PLATFORM, str(channel.id)) == ChannelMode.ALWAYS:
                return ChannelMode.ALWAYS.value
            return await modes.get(PLATFORM, str(channel.parent_id))
        return await modes.get(PLATFORM, str(channel.id))

    async def handle(self, message: discord.Message) -> None:
        """Answer ``message`` if it is addressed to membot, or only remember it (a channel in ``listen`` mode); a
        failure is logged and told to the user briefly."""
        me = self._client.user
        if me is None or message.author.id == me.id or message.author.bot:
            return  # never answer bots or itself (checked before any Redis round trip)
        in_dm = message.guild is None
        try:
            mode = await self.channel_mode(message) if not in_dm else DEFAULT_MODE.value
        except Exception:
            log.exception("could not read the channel's reply mode", extra={"channel": message.channel.id})
            mode = DEFAULT_MODE.value
        facts = addressing_of(message, me.id, mode)
        addressed = facts.is_dm or facts.mentions_bot or facts.replies_to_bot
        sink = DiscordReplySink(message)
        try:
            if not self._permitted(message):
                if addressed and not (facts.from_self or facts.from_bot):
                    await self._tell_once(message, "not-allowed", NOT_ALLOWED_NOTICE, sink)
                return
            fate = reach(mode, addressed=addressed, in_dm=in_dm)
            reason = answer_reason(facts)
            if reason is None or not fate.answer:
                if fate.remember and not (facts.from_self or facts.from_bot):
                    await self._remember(message, me)
                elif mode == ChannelMode.OFF and addressed:
                    await self._tell_once(message, f"off:{message.channel.id}", SWITCHED_OFF_NOTICE, sink)
                return
            await self._answer(message, me, reason, mode, sink)
        except Exception:
            log.exception("Discord message could not be handled", extra={"message_id": message.id})
            await sink.send(OutboundReply(TURN_FAILED_NOTICE, ReplyKind.NOTICE, str(message.id)))

    def _permitted(self, message: discord.Message) -> bool:
        channel = message.channel
        parent = channel.parent_id if isinstance(channel, discord.Thread) else None
        return self._allowlist.permits(
            channel_id=str(channel.id),
            user_id=str(message.author.id),
            in_dm=message.guild is None,
            parent_id=str(parent) if parent is not None else None,
        )

    async def _tell_once(self, message: discord.Message, what: str, text: str, sink: DiscordReplySink) -> None:
        person = person_of(agent_for(message.guild.id if message.guild else None, message.author.id))
        await tell_once_a_day(self._services.throttle, person, what, sink, text, str(message.id))

    async def _remember(self, message: discord.Message, me: discord.ClientUser) -> None:
        """Keep a message of a ``listen`` channel in its author's recall memory (once, whatever redelivers it)."""
        person = person_of(agent_for(message.guild.id if message.guild else None, message.author.id))
        if not await self._services.throttle.first_time(person, str(message.id)):
            return
        text = message_text(message, me)
        if text:
            await self._services.runtime.remember(to_inbound(message, me, text=text))

    async def _answer(
        self, message: discord.Message, me: discord.ClientUser, reason: Reason, mode: str, sink: DiscordReplySink
    ) -> None:
        """Admit the message (dedupe, rate limit), then import a DM's documents, fetch its images and run the
        turn."""
        person = person_of(agent_for(message.guild.id if message.guild else None, message.author.id))
        per_minute = self._services.settings.rate_limit_per_minute
        verdict = await admit(self._services.throttle, person, (str(message.id),), per_minute, sink, str(message.id))
        if verdict is Verdict.DUPLICATE:
            return
        addressed = reason in (Reason.MENTION, Reason.REPLY)
        if addressed and isinstance(message.channel, discord.Thread) and mode != ChannelMode.ALWAYS:
            # addressed inside a thread (even over the limit): keep answering there without being mentioned
            await self._services.channel_modes.set(PLATFORM, str(message.channel.id), ChannelMode.ALWAYS.value)
        if verdict is Verdict.RATE_LIMITED:
            return
        text = message_text(message, me)
        images = image_attachments(message.attachments)
        documents = [a for a in message.attachments if a not in images]
        if message.guild is None and documents:
            await import_attachments(message, documents, agent_for(None, message.author.id), self._services.admin, sink)
            if not text and not images:
                return
        context = await self._recent(message, me) if message.guild is not None else ()
        attachments = await fetch_images(message, enabled=self._services.runtime.sees_images)
        inbound = to_inbound(message, me, text=text, context=context, attachments=attachments)
        await self._services.runtime.handle(inbound, sink)

    async def _recent(self, message: discord.Message, me: discord.ClientUser) -> tuple[ChannelMessage, ...]:
        """Recent messages from others: the client's message cache, or once per channel a short history read."""
        context = recent_context(self._client.cached_messages, message, me)
        if context or message.channel.id in self._history_fetched:
            return context
        self._history_fetched.add(message.channel.id)
        try:
            async with asyncio.timeout(HISTORY_TIMEOUT_SECONDS):
                history = [item async for item in message.channel.history(limit=HISTORY_LIMIT, before=message)]
        except (TimeoutError, discord.HTTPException):
            log.debug("no channel history for context", extra={"channel": message.channel.id})
            return ()
        return recent_context(history, message, me)
