"""The ReplySink for Slack: posts the agent's words in the thread (chat.postMessage with ``thread_ts``).

Markdown is converted to mrkdwn and long answers are split into several messages. membot's own notices (rate
limit, message too long, model down) concern only the author, so in channels they are ephemeral
(chat.postEphemeral); in a DM they are ordinary messages.

Working indicator: Slack has no typing API for bots in channels or DMs (``assistant.threads.setStatus`` works only
in the split-view threads of apps configured as AI assistants), so when a turn takes longer than ``working_after``
seconds :meth:`SlackSink.typing` posts a short interim message where the answer will appear and deletes it
(``chat.delete``) when the turn ends, unless a reply shown as it grows took it over (``adapters/slack/live.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.events import OutboundReply, ReplyKind

from .live import LIVE_INTERVAL, SlackLiveReply
from .mrkdwn import format_reply

log = logging.getLogger(__name__)

WORKING_TEXT = "_membot is thinking…_"


class SlackSink:
    """Delivers replies to one Slack conversation (and thread); shows long ones as they grow (``live_reply``)."""

    live_interval = LIVE_INTERVAL

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel_id: str,
        user_id: str,
        thread_ts: str | None,
        is_dm: bool,
        on_posted: Callable[[str, str], None] | None = None,
        working_after: float = 3.0,
    ) -> None:
        self._client = client
        self._channel = channel_id
        self._user = user_id
        self._thread = thread_ts
        self._is_dm = is_dm
        self._on_posted = on_posted
        self._working_after = working_after
        self._working: list[str] = []  # the interim message, while posted
        self._live = False  # a reply is being shown: no interim message any more

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    @property
    def channel(self) -> str:
        return self._channel

    def live_reply(self) -> SlackLiveReply:
        return SlackLiveReply(self)

    def claim_working(self) -> str | None:
        """The interim message's ts, handed over to a live reply (then not deleted and counted as posted), or None."""
        self._live = True
        if not self._working:
            return None
        self._mark_posted()
        return self._working.pop()

    async def post(self, text: str) -> str:
        """Post one message of a reply where replies go; its ts."""
        response = await post_message(self._client, self._channel, text, self._thread)
        self._mark_posted()
        return str(response.get("ts") or "")

    def _mark_posted(self) -> None:
        """membot answered in the thread: follow-ups there are for it (``on_posted``)."""
        if self._thread and self._on_posted:
            self._on_posted(self._channel, self._thread)

    async def send(self, reply: OutboundReply) -> None:
        for text in format_reply(reply.text):
            try:
                if reply.kind is ReplyKind.NOTICE and not self._is_dm:
                    await self._client.chat_postEphemeral(
                        channel=self._channel, user=self._user, text=text, thread_ts=self._thread
                    )
                else:
                    await post_message(self._client, self._channel, text, self._thread)
                    self._mark_posted()
            except SlackApiError as exc:
                # The user cannot be reached; the turn goes on so memory stays consistent.
                log.warning("slack post failed", extra={"channel": self._channel, "error": exc.response.get("error")})
                return

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """After ``working_after`` seconds, an interim "thinking" message, removed when the block ends."""
        finished = asyncio.Event()
        task = asyncio.create_task(self._post_working(finished))
        try:
            yield
        finally:
            finished.set()  # a post already under way completes, so it can be removed
            await task
            posted, self._working = self._working, []
            for ts in posted:
                try:
                    await self._client.chat_delete(channel=self._channel, ts=ts)
                except SlackApiError as exc:
                    log.warning("could not remove the thinking message", extra={"error": exc.response.get("error")})

    async def _post_working(self, finished: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), self._working_after)
        if finished.is_set() or self._live:
            return
        try:
            response = await self._client.chat_postMessage(
                channel=self._channel, text=WORKING_TEXT, thread_ts=self._thread
            )
        except Exception as exc:  # the indicator is a courtesy: it never fails a turn
            log.debug("no thinking message", extra={"error": repr(exc)[:200]})
            return
        if response.get("ts"):
            self._working.append(str(response["ts"]))


async def post_message(
    client: AsyncWebClient, channel: str, text: str, thread_ts: str | None = None
) -> AsyncSlackResponse:
    """One chat.postMessage with mrkdwn text; links are not unfurled (answers stay compact)."""
    return await client.chat_postMessage(
        channel=channel, text=text, thread_ts=thread_ts, mrkdwn=True, unfurl_links=False, unfurl_media=False
    )
