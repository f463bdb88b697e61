"""Drives the real Slack adapter: signed HTTP requests in, the Web API stand-in records what comes out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from adapters.slack import SlackAdapter
from bot.app import App
from bot.core.events import AgentKey
from tests.standins.brain import Brain
from tests.standins.llm_server import ScriptedLLMServer
from tests.standins.slack_api import ApiCall, SlackStandIn

SIGNING_SECRET = "test-signing-secret"
TEAM = SlackStandIn.team_id
BOT = SlackStandIn.bot_user_id


def sign(body: str, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """X-Slack-Signature: v0=HMAC_SHA256(secret, "v0:{timestamp}:{body}")."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass
class Reply:
    status: int
    text: str
    seconds: float


@dataclass
class SlackHarness:
    """The running adapter plus everything around it; see the fixtures in conftest.py."""

    app: App
    adapter: SlackAdapter
    slack: SlackStandIn
    llm: ScriptedLLMServer
    brain: Brain
    session: aiohttp.ClientSession
    sent: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.adapter.port}/slack/events"

    def agent(self, user: str) -> AgentKey:
        return AgentKey("slack", TEAM, user)

    # --- raw requests ----------------------------------------------------------------------------------------
    async def post(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        signed: bool = True,
        secret: str = SIGNING_SECRET,
        timestamp: str | None = None,
    ) -> Reply:
        ts = timestamp or str(int(time.time()))
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if signed:
            all_headers.update({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(body, ts, secret)})
        started = time.monotonic()
        async with self.session.post(self.url, data=body.encode(), headers=all_headers) as response:
            text = await response.text()
        return Reply(response.status, text, time.monotonic() - started)

    # --- events ------------------------------------------------------------------------------------------------
    def envelope(self, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": "verification-token",
            "team_id": TEAM,
            "api_app_id": SlackStandIn.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
        }

    async def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None, **kwargs: Any
    ) -> Reply:
        """POST an event callback; user messages are also recorded in the stand-in, as Slack would hold them."""
        body = self.envelope(event, event_id)
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        if event.get("type") == "message" and not event.get("subtype") and "bot_id" not in event and not retry:
            self.slack.record_message(event["channel"], event)
        self.sent.append(body)
        return await self.post(json.dumps(body), "application/json", headers=headers, **kwargs)

    def ts(self) -> str:
        return self.slack.next_ts()

    def dm(self, user: str, text: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "message",
            "channel": f"D{user}",
            "channel_type": "im",
            "user": user,
            "text": text,
            "ts": self.ts(),
            "team": TEAM,
            **extra,
        }

    def channel_message(self, user: str, channel: str, text: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "message",
            "channel": channel,
            "channel_type": "channel",
            "user": user,
            "text": text,
            "ts": self.ts(),
            "team": TEAM,
            **extra,
        }

    def mention(self, user: str, channel: str, text: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "app_mention",
            "channel": channel,
            "user": user,
            "text": f"<@{BOT}> {text}",
            "ts": self.ts(),
            "team": TEAM,
            **extra,
        }

    async def say_dm(self, user: str, text: str) -> None:
        """A DM, answered before returning."""
        reply = await self.send_event(self.dm(user, text))
        assert reply.status == 200, reply
        await self.settle()

    async def say_in_channel(self, user: str, text: str, channel: str = "C0GENERAL") -> None:
        """A mention in a public channel (what is learned there is public), answered before returning."""
        reply = await self.send_event(self.mention(user, channel, text))
        assert reply.status == 200, reply
        await self.settle()

    async def settle(self) -> None:
        """Wait until the adapter's background work (turns, commands) is done."""
        await asyncio.wait_for(self.adapter.drain(), 30)

    # --- slash commands and interactivity ------------------------------------------------------------------------
    async def command(
        self, user: str, text: str, *, channel: str = "C0GENERAL", channel_name: str = "general"
    ) -> tuple[Reply, str]:
        """POST ``/memory <text>``; returns the HTTP reply and the command's response_url."""
        response_url = self.slack.new_response_url()
        form = {
            "token": "verification-token",
            "team_id": TEAM,
            "team_domain": "membot-test",
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": user.lower(),
            "command": "/memory",
            "text": text,
            "api_app_id": SlackStandIn.app_id,
            "response_url": response_url,
            "trigger_id": f"trigger.{uuid.uuid4().hex[:8]}",
        }
        reply = await self.post(urlencode(form), "application/x-www-form-urlencoded")
        return reply, response_url

    async def interact(self, payload: dict[str, Any]) -> Reply:
        return await self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def press(
        self, user: str, element: dict[str, Any], *, response_url: str | None = None, from_home: bool = False
    ) -> Reply:
        """Press a button (a Block Kit element taken from what membot sent)."""
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "membot-test"},
            "user": {"id": user, "team_id": TEAM, "username": user.lower()},
            "api_app_id": SlackStandIn.app_id,
            "trigger_id": f"trigger.{uuid.uuid4().hex[:8]}",
            "actions": [
                {
                    "type": "button",
                    "action_id": element["action_id"],
                    "block_id": "b1",
                    "value": element.get("value", ""),
                    "action_ts": str(time.time()),
                }
            ],
        }
        if from_home:
            payload["container"] = {"type": "view", "view_id": "V1"}
            payload["view"] = {"id": "V1", "type": "home", "callback_id": "", "state": {"values": {}}}
        else:
            payload["container"] = {"type": "message", "message_ts": "1.1", "is_ephemeral": True}
            payload["response_url"] = response_url or self.slack.new_response_url()
        return await self.interact(payload)

    def responses(self, response_url: str) -> list[dict[str, Any]]:
        path = response_url.split(str(self.slack.port), 1)[1]
        return [call.params for call in self.slack.calls if call.method == "response_url" and call.path == path]

    def model_calls(self) -> int:
        return len(self.llm.requests)


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every button in ``blocks``, by action id."""
    found: dict[str, dict[str, Any]] = {}
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found[element["action_id"]] = element
    return found


def all_text(value: Any) -> str:
    """Every string inside a JSON value, joined (to search blocks for text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(all_text(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(all_text(v) for v in value)
    return ""


def texts(calls: list[ApiCall]) -> list[str]:
    return [str(call.params.get("text", "")) for call in calls]
