"""Slack event payloads → normalized messages, and the "should I answer?" decision. Pure functions.

membot answers direct messages, messages that mention it, and follow-ups in threads it is already part of
(that last check needs the Web API, so :func:`trigger` only says "answer if the bot is in this thread").
Bot messages, edits, deletions and every other message subtype are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.core.events import AgentKey, Attachment, ChannelMessage, InboundMessage

# Subtypes that are a person saying something new; everything else (message_changed, message_deleted,
# bot_message, channel_join, ...) is ignored.
ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})

_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")


class Trigger(StrEnum):
    """Why membot would answer a message."""

    DIRECT = "direct"  # a direct message
    MENTION = "mention"  # mentions the bot
    THREAD = "thread"  # a reply in a thread: answer only if the bot is part of it
    CHANNEL = "channel"  # a channel an admin set to answer every message ("always")


@dataclass(frozen=True)
class SlackFile:
    """A file shared with a message, as the event describes it (details come from files.info)."""

    id: str
    name: str
    mimetype: str | None
    size: int | None


@dataclass(frozen=True)
class SlackMessage:
    """The facts of one message event that membot acts on."""

    team_id: str
    channel_id: str
    user_id: str
    text: str  # raw Slack text (escaped, with <@U..> mentions)
    ts: str
    thread_ts: str | None
    channel_type: str | None  # im | mpim | channel | group (None for app_mention)
    mentions_bot: bool
    files: tuple[SlackFile, ...] = ()

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im" or (self.channel_type is None and self.channel_id.startswith("D"))

    @property
    def in_thread(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def reply_thread(self) -> str | None:
        """Where to answer: in channels always in a thread (started at this message); in DMs inline."""
        if self.is_dm:
            return self.thread_ts if self.in_thread else None
        return self.thread_ts or self.ts

    @property
    def dedupe_key(self) -> str:
        """Same message, whichever event delivered it (app_mention and message both fire for a mention)."""
        return f"msg:{self.team_id}:{self.channel_id}:{self.ts}"


def mention_of(user_id: str) -> re.Pattern[str]:
    return re.compile(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>")


def parse_event(body: Mapping[str, Any], bot_user_id: str | None) -> SlackMessage | None:
    """The message in an ``app_mention`` or ``message`` event callback, or None if membot must ignore it."""
    event = body.get("event") or {}
    kind = event.get("type")
    if kind not in ("app_mention", "message"):
        return None
    if event.get("subtype") not in ANSWERED_SUBTYPES or event.get("bot_id") or event.get("hidden"):
        return None
    if kind == "app_mention" and event.get("edited"):
        return None  # Slack re-sends app_mention when a message that mentions the bot is edited
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    team = body.get("team_id") or event.get("team")
    if not (user and channel and ts and team) or user == bot_user_id:
        return None
    text = str(event.get("text") or "")
    mentions = kind == "app_mention" or (bot_user_id is not None and bool(mention_of(bot_user_id).search(text)))
    return SlackMessage(
        team_id=str(team),
        channel_id=str(channel),
        user_id=str(user),
        text=text,
        ts=str(ts),
        thread_ts=str(event["thread_ts"]) if event.get("thread_ts") else None,
        channel_type=event.get("channel_type"),
        mentions_bot=mentions,
        files=tuple(_files(event.get("files") or ())),
    )


def _files(items: Iterable[Mapping[str, Any]]) -> Iterable[SlackFile]:
    for item in items:
        if item.get("id"):
            size = item.get("size")
            yield SlackFile(str(item["id"]), str(item.get("name") or item["id"]), item.get("mimetype"), size)


def trigger(message: SlackMessage) -> Trigger | None:
    """Why to answer this message, or None to stay quiet."""
    if message.is_dm:
        return Trigger.DIRECT
    if message.mentions_bot:
        return Trigger.MENTION
    if message.in_thread:
        return Trigger.THREAD
    return None


def clean_text(text: str, bot_user_id: str | None) -> str:
    """Slack's markup as plain text: the bot's own mention removed, links and channels readable, unescaped."""
    if bot_user_id:
        text = mention_of(bot_user_id).sub("", text)
    text = _LINK.sub(
        lambda m: m.group(1) if not m.group(2) or m.group(2) == m.group(1) else f"{m.group(2)} ({m.group(1)})", text
    )
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _plain_link(match: re.Match[str]) -> str:
    url, label = match.group(1), match.group(2)
    return url if not label or label == url else f"{label} ({url})"


def slack_time(ts: str) -> datetime:
    """A Slack ``ts`` ("1700000000.000100") as an aware datetime."""
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def to_inbound(
    message: SlackMessage,
    bot_user_id: str | None,
    *,
    author_name: str,
    channel_name: str | None = None,
    recent: tuple[ChannelMessage, ...] = (),
    attachments: tuple[Attachment, ...] | None = None,
) -> InboundMessage:
    """The normalized message the runtime handles; ``attachments`` (with fetched images) replace the files as the
    event names them."""
    return InboundMessage(
        agent_key=slack_agent(message.team_id, message.user_id),
        platform="slack",
        workspace_id=message.team_id,
        channel_id=message.channel_id,
        author_id=message.user_id,
        author_name=author_name,
        text=clean_text(message.text, bot_user_id),
        is_dm=message.is_dm,
        thread_id=message.reply_thread,
        message_id=message.ts,
        timestamp=slack_time(message.ts),
        attachments=tuple(Attachment(f.name, f.mimetype, f.size) for f in message.files)
        if attachments is None
        else attachments,
        recent_context=recent,
        channel_name=channel_name,
    )


def recent_from_history(
    history: Iterable[Mapping[str, Any]], *, current_ts: str, bot_user_id: str | None, names: Mapping[str, str]
) -> tuple[ChannelMessage, ...]:
    """Other people's messages before the current one (oldest first), from conversations.history/replies items."""
    picked: list[ChannelMessage] = []
    for item in history:
        user, ts = item.get("user"), str(item.get("ts") or "")
        if not user or user == bot_user_id or item.get("bot_id") or ts == current_ts:
            continue
        if item.get("subtype") not in ANSWERED_SUBTYPES or _ts_key(ts) > _ts_key(current_ts):
            continue
        text = clean_text(str(item.get("text") or ""), bot_user_id)
        if text:
            picked.append(ChannelMessage(names.get(str(user), str(user)), text, slack_time(ts)))
    return tuple(sorted(picked, key=lambda m: m.timestamp))


def _ts_key(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return 0.0


def slack_agent(team_id: str | None, user_id: str) -> AgentKey:
    """The agent of a Slack user: one per person in a workspace, in DMs and channels alike
    (``slack:<team>:<user>``)."""
    return AgentKey("slack", team_id or "dm", user_id)
