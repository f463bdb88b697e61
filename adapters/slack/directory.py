"""What membot looks up in Slack: names, workspace admins, recent messages, and the threads it is part of.

Names and thread membership are cached in bounded in-process caches. Thread membership is authoritative in
Slack itself (conversations.replies), so it survives restarts and works with several processes; the cache only
saves calls. Admin rights are always asked fresh (users.info), never cached.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.events import ChannelMessage

from .normalize import recent_from_history

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

RECENT_LIMIT = 6
THREAD_PAGES = 3  # conversations.replies pages (200 messages each) scanned for the bot's own messages


class TTLCache(Generic[K, V]):
    """A small LRU cache whose entries expire after ``ttl`` seconds."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: K, value: V) -> None:
        self._items[key] = (time.monotonic() + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class SlackDirectory:
    """Cached look-ups through the Web API."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._names: TTLCache[str, str] = TTLCache(5000, 3600)
        self._channels: TTLCache[str, str] = TTLCache(2000, 3600)
        self._threads: TTLCache[tuple[str, str], bool] = TTLCache(10_000, 7 * 86_400)

    async def display_name(self, user_id: str) -> str:
        """The user's display name (falls back to the real name, the handle, then the id)."""
        cached = self._names.get(user_id)
        if cached is not None:
            return cached
        try:
            user = (await self._client.users_info(user=user_id)).get("user") or {}
        except SlackApiError as exc:
            log.warning("users.info failed", extra={"user": user_id, "error": exc.response.get("error")})
            return user_id
        profile = user.get("profile") or {}
        name = str(profile.get("display_name") or profile.get("real_name") or user.get("name") or user_id)
        self._names.put(user_id, name)
        return name

    async def is_workspace_admin(self, user_id: str) -> bool:
        """Whether the user is an admin or owner of the workspace (asked fresh every time)."""
        try:
            user = (await self._client.users_info(user=user_id)).get("user") or {}
        except SlackApiError as exc:
            log.warning("users.info failed", extra={"user": user_id, "error": exc.response.get("error")})
            return False
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    async def channel_name(self, channel_id: str) -> str | None:
        cached = self._channels.get(channel_id)
        if cached is not None:
            return cached
        try:
            channel = (await self._client.conversations_info(channel=channel_id)).get("channel") or {}
        except SlackApiError:
            return None
        name = channel.get("name")
        if name:
            self._channels.put(channel_id, str(name))
        return str(name) if name else None

    def mark_thread(self, channel_id: str, thread_ts: str) -> None:
        """Remember that membot posted in this thread."""
        self._threads.put((channel_id, thread_ts), True)

    async def bot_in_thread(self, channel_id: str, thread_ts: str, bot_user_id: str | None) -> bool:
        """Whether membot has posted in (or started) this thread."""
        if self._threads.get((channel_id, thread_ts)):
            return True
        if not bot_user_id:
            return False
        cursor: str | None = None
        for _ in range(THREAD_PAGES):
            try:
                page = await self._client.conversations_replies(
                    channel=channel_id, ts=thread_ts, limit=200, cursor=cursor
                )
            except SlackApiError as exc:
                log.warning("conversations.replies failed", extra={"error": exc.response.get("error")})
                return False
            if any(_is_bot(item, bot_user_id) for item in page.get("messages") or ()):
                self.mark_thread(channel_id, thread_ts)
                return True
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return False

    async def recent(
        self, channel_id: str, thread_ts: str | None, current_ts: str, bot_user_id: str | None
    ) -> tuple[ChannelMessage, ...]:
        """The last few messages from others before ``current_ts``, in the thread or else in the channel."""
        try:
            if thread_ts and thread_ts != current_ts:
                page = await self._client.conversations_replies(
                    channel=channel_id, ts=thread_ts, latest=current_ts, inclusive=False, limit=RECENT_LIMIT + 1
                )
                items = list(page.get("messages") or ())[-(RECENT_LIMIT + 1) :]
            else:
                page = await self._client.conversations_history(
                    channel=channel_id, latest=current_ts, inclusive=False, limit=RECENT_LIMIT
                )
                items = list(page.get("messages") or ())
        except SlackApiError as exc:
            log.info("recent messages unavailable", extra={"error": exc.response.get("error")})
            return ()
        names = {user: await self.display_name(user) for user in _authors(items, bot_user_id)}
        recent = recent_from_history(items, current_ts=current_ts, bot_user_id=bot_user_id, names=names)
        return recent[-RECENT_LIMIT:]


def _is_bot(item: Mapping[str, Any], bot_user_id: str) -> bool:
    return item.get("user") == bot_user_id or (item.get("bot_profile") or {}).get("user_id") == bot_user_id


def _authors(items: list[Any], bot_user_id: str | None) -> set[str]:
    return {str(item["user"]) for item in items if item.get("user") and item.get("user") != bot_user_id}
