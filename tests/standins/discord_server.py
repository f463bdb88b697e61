"""A small stand-in for Discord on 127.0.0.1, for the real discord.py client.

It serves the REST routes the client calls (login, gateway lookup, slash-command sync, messages, typing, DMs,
interaction callbacks and webhook follow-ups, attachment downloads) and the gateway WebSocket with its faults
(``discord_gateway.DiscordGateway``: HELLO, IDENTIFY → READY, RESUME, RECONNECT, INVALID_SESSION, close codes,
outages). Tests dispatch MESSAGE_CREATE / INTERACTION_CREATE payloads and read every recorded REST call::

    async with DiscordStandIn() as discord_api:
        settings = ...(DISCORD_API_BASE_URL=discord_api.base_url, DISCORD_TOKEN="test-token")
        ...
        sent = await discord_api.send_message(ALICE, "hello")          # a DM
        [reply] = await discord_api.wait_for(discord_api.created_in(sent["channel_id"]))

The bot's messages are kept (``messages``): PATCH edits and DELETE removes them, with Discord's errors (Unknown
Message, another user's message, over 2,000 characters); ``ratelimit`` answers the next calls with a 429.
It runs in the test's own event loop (the discord.py client does too).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import BodyPartReader, web

from tests.standins import discord_payloads as payloads
from tests.standins.discord_gateway import DiscordGateway
from tests.standins.discord_payloads import (
    ALICE,
    BOB,
    BOT,
    BOT_ROLE,
    EPHEMERAL,
    GENERAL,
    GUILD_ID,
    MANAGE_GUILD,
    OTHER_BOT,
    RANDOM,
    THREAD,
    Payload,
    dm_channel_id,
)

__all__ = [
    "ALICE",
    "BOB",
    "BOT",
    "BOT_ROLE",
    "EPHEMERAL",
    "GENERAL",
    "GUILD_ID",
    "MANAGE_GUILD",
    "OTHER_BOT",
    "RANDOM",
    "THREAD",
    "DiscordStandIn",
    "Payload",
    "RestCall",
]

API_PREFIX = "/api/v10"


@dataclass
class RestCall:
    """One REST request as the stand-in received it; ``path`` is relative to ``/api/v10``."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    files: list[tuple[str, bytes]] = field(default_factory=list)
    response: Any = None
    at: float = field(default_factory=time.monotonic)  # when it arrived


class DiscordStandIn(DiscordGateway):
    """REST + gateway of a tiny Discord with one server (#general, #random, a thread), and DMs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[RestCall] = []
        self.commands: list[Payload] = []
        self.attachments: dict[str, bytes] = {}
        self.snowflake = payloads.Snowflakes()
        self._runner: web.AppRunner | None = None
        self.token = "test-token"  # the bot token it accepts; others get 401 like Discord
        self.messages: dict[int, Payload] = {}  # the bot's messages now (created, edited, not deleted), by id
        self.ratelimits: dict[str, list[float]] = {}  # "PATCH"/"POST"/"DELETE" -> retry_after of its next 429s

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def __aenter__(self) -> DiscordStandIn:
        app = web.Application()
        self.add_gateway_routes(app)
        app.router.add_get("/attachments/{name}", self._attachment)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """What DISCORD_API_BASE_URL is set to: the host (membot adds /api/v10)."""
        return f"http://127.0.0.1:{self._port}"

    # -- ids and payloads --------------------------------------------------------------------------------------

    dm_channel_id = staticmethod(dm_channel_id)

    def message_payload(
        self, author: Payload, content: str, channel_id: int, *, guild: bool, **options: Any
    ) -> Payload:
        """A message with a fresh id (``options``: mentions, mention_roles, reply_to, attachments, ...)."""
        message_id = options.pop("message_id", None) or self.snowflake()
        return payloads.message(message_id, author, content, channel_id, in_guild=guild, **options)

    def attachment(self, filename: str, data: bytes, content_type: str | None) -> Payload:
        """Serve ``data`` as a downloadable attachment and return its payload."""
        self.attachments[filename] = data
        url = f"{self.base_url}/attachments/{filename}"
        payload: Payload = {"id": str(self.snowflake()), "filename": filename, "size": len(data), "url": url}
        payload["proxy_url"] = url
        if content_type:
            payload["content_type"] = content_type
        return payload

    # -- driving the client ------------------------------------------------------------------------------------

    async def send_message(
        self,
        author: Payload,
        content: str,
        *,
        channel_id: int | None = None,
        **options: Any,
    ) -> Payload:
        """Dispatch a MESSAGE_CREATE: a DM from ``author`` unless a server ``channel_id`` is given."""
        guild = channel_id is not None
        channel = channel_id if channel_id is not None else self.dm_channel_id(author)
        payload = self.message_payload(author, content, channel, guild=guild, **options)
        await self.dispatch("MESSAGE_CREATE", payload)
        return payload

    async def slash(self, author: Payload, command: str, **options: Any) -> Payload:
        """Dispatch a slash command, e.g. ``slash(ALICE, "memory show")`` or ``slash(BOB, "membot user show",
        member=ALICE)``. Keywords ``guild``, ``permissions`` and ``channel_id`` shape the interaction; the others
        are the command's options."""
        shape = {k: options.pop(k) for k in ("permissions", "channel_id") if k in options}
        in_guild = options.pop("guild", True)
        data = payloads.command_data(self.snowflake(), command, options)
        payload = payloads.interaction(self.snowflake(), author, data, in_guild=in_guild, **shape)
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def press(self, author: Payload, message: Payload, label: str) -> Payload:
        """Dispatch a button press on a message membot sent (the button found by its label)."""
        data = {"custom_id": payloads.button_custom_id(message, label), "component_type": 2}
        payload = payloads.interaction(self.snowflake(), author, data, interaction_type=3, message=message)
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def wait_for(
        self, predicate: Callable[[RestCall], bool], count: int = 1, within: float = 15.0
    ) -> list[RestCall]:
        """The first ``count`` recorded calls matching ``predicate``, waiting for them up to ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = [call for call in self.calls if predicate(call)]
            if len(found) >= count:
                return found[:count]
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} matching Discord calls, got {len(found)}: {self.summary()}")
            await asyncio.sleep(0.02)

    def matching(self, predicate: Callable[[RestCall], bool]) -> list[RestCall]:
        return [call for call in self.calls if predicate(call)]

    @staticmethod
    def created_in(channel_id: int | str) -> Callable[[RestCall], bool]:
        """Predicate: a message created in this channel."""
        path = f"/channels/{channel_id}/messages"
        return lambda call: call.method == "POST" and call.path == path

    @staticmethod
    def callbacks_for(interaction: Payload) -> Callable[[RestCall], bool]:
        """Predicate: an interaction callback, follow-up or edit for this interaction."""
        token = interaction["token"]
        return lambda call: token in call.path and call.method in ("POST", "PATCH")

    @staticmethod
    def edits_of(channel_id: int | str, message_id: int | str) -> Callable[[RestCall], bool]:
        """Predicate: an edit of this message (PATCH /channels/{channel.id}/messages/{message.id})."""
        path = f"/channels/{channel_id}/messages/{message_id}"
        return lambda call: call.method == "PATCH" and call.path == path

    def channel_messages(self, channel_id: int | str) -> list[Payload]:
        """The bot's messages in a channel as they are now, oldest first."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)]

    def edits(self) -> list[RestCall]:
        """Every message edit (PATCH /channels/{id}/messages/{id})."""
        return [c for c in self.calls if c.method == "PATCH" and c.path.startswith("/channels/")]

    def ratelimit(self, method: str, retry_after: float = 0.5, times: int = 1) -> None:
        """Answer the next ``times`` channel-message calls of ``method`` with Discord's 429: a JSON body with
        ``retry_after`` (seconds) and ``global: false``, and the ``X-RateLimit-*`` headers (discord.py waits and
        retries)."""
        self.ratelimits.setdefault(method, []).extend([retry_after] * times)

    def summary(self) -> str:
        return ", ".join(f"{c.method} {c.path}" for c in self.calls[-30:])

    # -- REST --------------------------------------------------------------------------------------------------

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self.attachments.get(request.match_info["name"])
        return web.Response(status=404) if data is None else web.Response(body=data)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        call = RestCall(request.method, "/" + request.match_info["tail"], dict(request.query), dict(request.headers))
        if request.content_type == "application/json":
            call.json = await request.json()
        elif request.content_type.startswith("multipart/"):
            await _read_multipart(request, call)
        self.calls.append(call)
        token_in_url = call.path.startswith(("/interactions/", "/webhooks/"))  # these carry the interaction token
        if not token_in_url and call.headers.get("Authorization") != f"Bot {self.token}":
            return _json(401, {"message": "401: Unauthorized", "code": 0})
        limited = self.ratelimits.get(call.method)
        if limited and call.path.startswith("/channels/") and "/messages" in call.path:
            return _rate_limited(limited.pop(0))
        status, body = self._route(call)
        call.response = body
        return web.Response(status=status) if body is None else _json(status, body)

    def _route(self, call: RestCall) -> tuple[int, Any]:
        parts = call.path.strip("/").split("/")
        key = (call.method, *parts)
        match key:
            case ("GET", "users", "@me"):
                return 200, BOT
            case ("GET", "oauth2", "applications", "@me"):
                return 200, payloads.application()
            case ("GET", "gateway", "bot"):
                limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
                return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}
            case ("GET", "gateway"):
                return 200, {"url": self.gateway_url}
            case ("PUT", "applications", _, "commands"):
                self.commands = [payloads.registered_command(c, self.snowflake()) for c in call.json]
                return 200, self.commands
            case ("GET", "applications", _, "commands"):
                return 200, self.commands
            case ("POST", "channels", channel_id, "typing"):
                return 204, None
            case ("GET", "channels", channel_id, "messages"):
                return 200, []
            case ("POST", "channels", channel_id, "messages"):
                if len((call.json or {}).get("content") or "") > CONTENT_LIMIT:
                    return 400, _too_long()
                created = self._created(call, int(channel_id))
                self.messages[int(created["id"])] = created
                return 200, created
            case ("PATCH", "channels", channel_id, "messages", message_id):
                return self._edit(call, int(message_id))
            case ("DELETE", "channels", channel_id, "messages", message_id):
                if self.messages.pop(int(message_id), None) is None:
                    return 404, UNKNOWN_MESSAGE
                return 204, None
            case ("POST", "users", "@me", "channels"):
                recipient = payloads.user(int(call.json["recipient_id"]), "someone")
                return 200, {"id": str(dm_channel_id(recipient)), "type": 1, "recipients": [recipient]}
            case ("POST", "interactions", interaction_id, _, "callback"):
                return 200, self._callback(call, interaction_id)
            case ("POST", "webhooks", _, _):
                return 200, self._created(call, GENERAL, flags=(call.json or {}).get("flags", 0))
            case ("PATCH", "webhooks", _, _, "messages", message_id):
                message_id = self.snowflake() if message_id == "@original" else int(message_id)
                return 200, self._created(call, GENERAL, message_id=message_id)
        return 404, {"message": f"stand-in has no route for {call.method} {call.path}", "code": 0}

    def _edit(self, call: RestCall, message_id: int) -> tuple[int, Any]:
        """PATCH a message: only the bot's own (50005 otherwise), 404 Unknown Message once deleted, content within
        2,000 characters (a 400 Invalid Form Body otherwise); the message comes back with ``edited_timestamp``."""
        message = self.messages.get(message_id)
        if message is None:
            return 404, UNKNOWN_MESSAGE
        if message["author"]["id"] != str(BOT["id"]):
            return 403, {"message": "Cannot edit a message authored by another user", "code": 50005}
        body = call.json or {}
        if "content" in body:
            if len(body["content"] or "") > CONTENT_LIMIT:
                return 400, _too_long()
            message["content"] = body["content"] or ""
        message["edited_timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
        return 200, message

    def _created(self, call: RestCall, channel_id: int, *, message_id: int | None = None, flags: int = 0) -> Payload:
        """The message a create/edit route returns: membot's words, buttons and files as sent."""
        body = call.json or {}
        attachments = tuple(
            {"id": str(self.snowflake()), "filename": name, "size": len(data), "url": "", "proxy_url": ""}
            for name, data in call.files
        )
        return self.message_payload(
            BOT,
            body.get("content") or "",
            channel_id,
            guild=False,
            message_id=message_id or self.snowflake(),
            attachments=attachments,
            flags=flags | body.get("flags", 0),
            components=body.get("components"),
        )

    def _callback(self, call: RestCall, interaction_id: str) -> Payload:
        """An interaction callback's answer (discord.py asks ``with_response``)."""
        body = call.json or {}
        kind = body.get("type")
        data = body.get("data") or {}
        flags = data.get("flags", 0)
        message_id = self.snowflake()
        result: Payload = {
            "interaction": {
                "id": interaction_id,
                "type": 2,
                "response_message_id": str(message_id),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": {"type": kind},
        }
        if kind in (4, 7):
            result["resource"]["message"] = self._created(call, GENERAL, message_id=message_id, flags=flags)
        return result


CONTENT_LIMIT = 2000
UNKNOWN_MESSAGE = {"message": "Unknown Message", "code": 10008}


def _too_long() -> Payload:
    errors = {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}
    return {"message": "Invalid Form Body", "code": 50035, "errors": errors}


def _rate_limited(retry_after: float) -> web.Response:
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
    headers = {
        "Content-Type": "application/json",
        "Retry-After": str(max(1, round(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": str(retry_after),
        "X-RateLimit-Bucket": "stand-in-messages",
        "X-RateLimit-Scope": "user",
        "Via": "1.1 google",  # Discord answers through its proxy; discord.py reads a 429 without it as a Cloudflare ban
    }
    return web.Response(body=json.dumps(body).encode(), status=429, headers=headers)


def _json(status: int, body: Any) -> web.Response:
    # exactly "application/json", as Discord sends it (discord.py compares the header verbatim)
    return web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"})


async def _read_multipart(request: web.Request, call: RestCall) -> None:
    """``payload_json`` becomes ``call.json``; file parts go to ``call.files``."""
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader), "discord.py sends flat multipart bodies"
        data = await part.read()
        if part.name == "payload_json":
            call.json = json.loads(data)
        else:
            call.files.append((part.filename or part.name or "file", bytes(data)))
