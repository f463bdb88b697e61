"""Pure translation of discord.py messages: whether membot should answer, and the normalized ``InboundMessage``.

Nothing here touches the network or membot's services; the client gathers what is needed (the channel's reply
mode, cached messages) and passes it in, so these functions are easy to test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import discord

from bot.core.events import AgentKey, Attachment, ChannelMessage, InboundMessage

PLATFORM = "discord"
RECENT_CONTEXT_SIZE = 5
RECENT_TEXT_CHARS = 300
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")
_CONVERSATION_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


class Reason(StrEnum):
    """Why membot answers a message."""

    DM = "dm"
    MENTION = "mention"
    REPLY = "reply"  # a reply to one of membot's messages
    ALWAYS = "always"  # a channel (or thread) in "always answer" mode


@dataclass(frozen=True)
class Addressing:
    """The facts about a message that decide whether membot answers it."""

    from_self: bool
    from_bot: bool  # another bot, a webhook, or a system message
    is_dm: bool
    mentions_bot: bool
    replies_to_bot: bool
    channel_mode: str  # "always" or "mention": the channel's mode, or its thread's


def answer_reason(facts: Addressing) -> Reason | None:
    """Why membot should answer, or None to stay quiet. Bots (itself included) are never answered."""
    if facts.from_self or facts.from_bot:
        return None
    if facts.is_dm:
        return Reason.DM
    if facts.mentions_bot:
        return Reason.MENTION
    if facts.replies_to_bot:
        return Reason.REPLY
    if facts.channel_mode == "always":
        return Reason.ALWAYS
    return None


def addressing_of(message: discord.Message, bot_user_id: int, channel_mode: str) -> Addressing:
    """Read the answering facts off a discord.py message."""
    author = message.author
    from_bot = author.bot or message.webhook_id is not None or message.type not in _CONVERSATION_TYPES
    mentions_bot = any(user.id == bot_user_id for user in message.mentions) or any(
        role.tags is not None and role.tags.bot_id == bot_user_id for role in message.role_mentions
    )
    return Addressing(
        from_self=author.id == bot_user_id,
        from_bot=from_bot,
        is_dm=message.guild is None,
        mentions_bot=mentions_bot,
        replies_to_bot=replied_author_id(message) == bot_user_id,
        channel_mode=channel_mode,
    )


def replied_author_id(message: discord.Message) -> int | None:
    """Author of the message this one replies to, when Discord sent it along or it is cached."""
    reference = message.reference
    if reference is None:
        return None
    resolved = reference.resolved or reference.cached_message
    return resolved.author.id if isinstance(resolved, discord.Message) else None


def clean_text(
    content: str,
    bot_user_id: int,
    bot_name: str,
    *,
    users: Mapping[int, str],
    roles: Mapping[int, str],
    channels: Mapping[int, str],
    bot_role_ids: frozenset[int] = frozenset(),
) -> str:
    """Message text as a person reads it: a leading mention of membot dropped, other mentions shown as names."""
    bot_token = rf"(?:<@!?{bot_user_id}>{''.join(f'|<@&{role}>' for role in sorted(bot_role_ids))})"
    text = re.sub(rf"^\s*(?:{bot_token}[\s,:]*)+", "", content)

    def user(match: re.Match[str]) -> str:
        uid = int(match.group(1))
        return f"@{bot_name}" if uid == bot_user_id else f"@{users.get(uid, 'unknown-user')}"

    def role(match: re.Match[str]) -> str:
        rid = int(match.group(1))
        return f"@{bot_name}" if rid in bot_role_ids else f"@{roles.get(rid, 'unknown-role')}"

    text = _USER_MENTION.sub(user, text)
    text = _ROLE_MENTION.sub(role, text)
    text = _CHANNEL_MENTION.sub(lambda m: f"#{channels.get(int(m.group(1)), 'unknown-channel')}", text)
    return text.strip()


def message_text(message: discord.Message, bot_user: discord.abc.User) -> str:
    """The cleaned text of a discord.py message."""
    guild = message.guild
    channels: dict[int, str] = {}
    for raw_id in message.raw_channel_mentions:
        channel = guild.get_channel_or_thread(raw_id) if guild else None
        if channel is not None:
            channels[raw_id] = channel.name
    return clean_text(
        message.content,
        bot_user.id,
        bot_user.display_name,
        users={user.id: user.display_name for user in message.mentions},
        roles={role.id: role.name for role in message.role_mentions},
        channels=channels,
        bot_role_ids=frozenset(
            role.id for role in message.role_mentions if role.tags is not None and role.tags.bot_id == bot_user.id
        ),
    )


def recent_context(
    cached: Iterable[discord.Message],
    message: discord.Message,
    bot_user: discord.abc.User,
    size: int = RECENT_CONTEXT_SIZE,
) -> tuple[ChannelMessage, ...]:
    """The last few messages from other people in the same channel, before ``message``, oldest first."""
    others = sorted(
        (
            item
            for item in cached
            if item.channel.id == message.channel.id
            and item.id < message.id
            and item.author.id not in (message.author.id, bot_user.id)
        ),
        key=lambda item: item.id,
    )
    recent: list[ChannelMessage] = []
    for item in reversed(others):
        text = message_text(item, bot_user)
        if text:
            recent.insert(0, ChannelMessage(item.author.display_name, text[:RECENT_TEXT_CHARS], item.created_at))
        if len(recent) == size:
            break
    return tuple(recent)


def to_inbound(
    message: discord.Message,
    bot_user: discord.abc.User,
    *,
    text: str | None = None,
    context: tuple[ChannelMessage, ...] = (),
    attachments: tuple[Attachment, ...] | None = None,
) -> InboundMessage:
    """The normalized message for the runtime; in a thread, ``channel_id`` is its parent and ``thread_id`` itself.
    ``attachments`` (with downloaded images) replace the message's attachments as discord.py describes them."""
    channel = message.channel
    guild = message.guild
    thread_id: str | None = None
    channel_id = str(channel.id)
    channel_name: str | None = getattr(channel, "name", None)
    if isinstance(channel, discord.Thread):
        thread_id = str(channel.id)
        channel_id = str(channel.parent_id)
        parent = channel.parent
        channel_name = f"{parent.name}/{channel.name}" if parent is not None else channel.name
    return InboundMessage(
        agent_key=agent_for(guild.id if guild else None, message.author.id),
        platform=PLATFORM,
        workspace_id=str(guild.id) if guild else None,
        channel_id=channel_id,
        author_id=str(message.author.id),
        author_name=message.author.display_name,
        text=message_text(message, bot_user) if text is None else text,
        is_dm=guild is None,
        thread_id=thread_id,
        message_id=str(message.id),
        timestamp=message.created_at,
        attachments=tuple(Attachment(a.filename, a.content_type, a.size, a.url) for a in message.attachments)
        if attachments is None
        else attachments,
        recent_context=() if guild is None else context,
        channel_name=None if guild is None else channel_name,
    )


def agent_for(guild_id: int | None, user_id: int) -> AgentKey:
    """The agent of a Discord user in a server (``discord:<guild>:<user>``) or in DMs (``discord:dm:<user>``)."""
    return AgentKey(PLATFORM, str(guild_id) if guild_id else "dm", str(user_id))
