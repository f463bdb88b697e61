"""A small stand-in for Discord on 127.0.0.1, for the real discord.py client.

It serves the REST routes the client calls (login, gateway lookup, slash-command sync, messages, typing, DMs,
interaction callbacks and webhook follow-ups, attachment downloads) and the gateway WebSocket (HELLO, IDENTIFY →
READY + GUILD_CREATE, heartbeats → ACKs, RESUME → RESUMED or, for a session it no longer has, INVALID_SESSION
``d: false``; ``zlib-stream`` compression when asked for). Tests dispatch MESSAGE_CREATE / INTERACTION_CREATE
payloads and read every recorded REST call::

    async with DiscordStandIn() as discord_api:
        settings = ...(DISCORD_API_BASE_URL=discord_api.base_url, DISCORD_TOKEN="test-token")
        ...
        sent = await discord_api.send_message(ALICE, "hello")          # a DM
        [reply] = await discord_api.wait_for(discord_api.created_in(sent["channel_id"]))

Gateway faults, as Discord documents them: ``reconnect()``/``request_reconnect()`` (op 7 RECONNECT),
``invalid_session(resumable)`` (op 9; ``d: false`` ends the session), ``close_gateway(code)`` (a close frame;
4007 and 4009 end the session, other 4000–4009 codes leave it resumable), ``drop_gateway()`` / ``restore_gateway()``
(an outage: sockets cut, new ones refused with 503 until restored). ``resume_gateway_url`` is what READY names
(default: its own gateway). Every socket's path and the time of each IDENTIFY and INVALID_SESSION are recorded.

It runs in the test's own event loop (the discord.py client does too).
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

from tests.standins import discord_payloads as payloads
from tests.standins.discord_payloads import (
    ALICE,
    APPLICATION_ID,
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


# Discord's gateway close codes that end the session ("reconnect and start a new session"); the other 4000-4009
# codes leave it resumable. 4004 and 4010-4014 tell the client not to reconnect at all.
SESSION_ENDING_CLOSE_CODES = {4007, 4009}


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    query: dict[str, str]
    request: web.Request
    compressor: Any = None  # zlib compressobj when the client asked for zlib-stream
    seq: int = 0
    session_id: str | None = None
    shard: tuple[int, int] = (0, 1)


@dataclass
class Session:
    """A gateway session: what a RESUME needs to be accepted."""

    session_id: str
    shard: tuple[int, int]
    seq: int = 0
    valid: bool = True


class DiscordStandIn:
    """REST + gateway of a tiny Discord with one server (#general, #random, a thread), and DMs."""

    def __init__(self) -> None:
        self.calls: list[RestCall] = []
        self.identifies: list[Payload] = []
        self.resumes: list[Payload] = []
        self.heartbeats = 0
        self.ws_queries: list[dict[str, str]] = []
        self.ws_paths: list[str] = []  # the path of every gateway socket opened, in order
        self.sessions: dict[str, Session] = {}
        self.identify_times: list[float] = []  # time.monotonic() of each IDENTIFY
        self.invalid_session_times: list[float] = []  # of each INVALID_SESSION sent
        self.resume_gateway_url: str | None = None  # what READY names (a path: on this host); None: its gateway
        self.gateway_available = True  # False: sockets are refused (503), as in a gateway outage
        self.commands: list[Payload] = []
        self.attachments: dict[str, bytes] = {}
        self._connections: list[_Connection] = []
        self.snowflake = payloads.Snowflakes()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.ready = asyncio.Event()
        self.token = "test-token"  # the bot token it accepts; others get 401 like Discord
        self.refuse_privileged_intents = False  # close IDENTIFY with 4014, as when Message Content is not enabled

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def __aenter__(self) -> DiscordStandIn:
        app = web.Application()
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_get("/gateway-ws/resume", self._gateway)  # a session-specific resume URL on this host
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
        for connection in list(self._connections):
            await connection.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """What DISCORD_API_BASE_URL is set to: the host (membot adds /api/v10)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway-ws"

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

    async def dispatch(self, event: str, data: Payload) -> None:
        """Send a dispatch (op 0) to the shard that gets it, as Discord routes events: a server's events to shard
        ``(guild_id >> 22) % shard_count``, DMs to shard 0."""
        open_connections = [c for c in self._connections if not c.ws.closed and c.session_id is not None]
        assert open_connections, "no discord.py client is connected to the gateway"
        for connection in open_connections:
            shard_id, count = connection.shard
            guild_id = data.get("guild_id")
            target = (int(guild_id) >> 22) % count if guild_id else 0
            if target != shard_id:
                continue
            await self._dispatch_to(connection, event, data)

    async def _dispatch_to(self, connection: _Connection, event: str, data: Payload) -> None:
        connection.seq += 1
        session = self.sessions.get(connection.session_id or "")
        if session is not None:
            session.seq = connection.seq
        await self._send(connection, {"op": 0, "t": event, "s": connection.seq, "d": data})

    def open_shards(self) -> list[int]:
        """The shards with an identified or resumed socket open now."""
        return sorted(c.shard[0] for c in self._connections if not c.ws.closed and c.session_id is not None)

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

    async def reconnect(self, within: float = 15.0) -> None:
        """Ask connected clients to reconnect (op 7, as Discord does) and wait until one has RESUMEd."""
        resumed = len(self.resumes)
        for connection in [c for c in self._connections if not c.ws.closed]:
            await self._send(connection, {"op": 7, "d": None})
        deadline = time.monotonic() + within
        while len(self.resumes) == resumed:
            if time.monotonic() > deadline:
                raise AssertionError("the client did not resume its gateway session")
            await asyncio.sleep(0.02)

    def _targets(self, shard: int | None) -> list[_Connection]:
        return [c for c in self._connections if not c.ws.closed and (shard is None or c.shard[0] == shard)]

    async def request_reconnect(self, shard: int | None = None) -> None:
        """Op 7 RECONNECT: the client should reconnect and resume at once."""
        for connection in self._targets(shard):
            await self._send(connection, {"op": 7, "d": None})

    async def invalid_session(self, resumable: bool, shard: int | None = None) -> None:
        """Op 9 INVALID_SESSION with ``d: resumable``; ``d: false`` ends the session (a RESUME of it is refused)."""
        for connection in self._targets(shard):
            if not resumable:
                self._end_session(connection.session_id)
            self.invalid_session_times.append(time.monotonic())
            await self._send(connection, {"op": 9, "d": resumable})

    async def close_gateway(self, code: int, shard: int | None = None) -> None:
        """Close the sockets with a gateway close code; 4007 and 4009 end their sessions, as Discord's do."""
        for connection in self._targets(shard):
            if code in SESSION_ENDING_CLOSE_CODES:
                self._end_session(connection.session_id)
            await connection.ws.close(code=code, message=f"closed with {code}".encode())

    async def drop_gateway(self) -> None:
        """An outage: every socket is cut without a close frame and new ones are refused until restored."""
        self.gateway_available = False
        for connection in self._targets(None):
            transport = connection.request.transport
            if transport is not None:
                transport.abort()

    def restore_gateway(self) -> None:
        self.gateway_available = True

    def _resume_url(self) -> str:
        url = self.resume_gateway_url or self.gateway_url
        return f"ws://127.0.0.1:{self._port}{url}" if url.startswith("/") else url

    def _end_session(self, session_id: str | None) -> None:
        if session_id in self.sessions:
            self.sessions[session_id].valid = False

    def identify_delay_after_invalid_session(self) -> float:
        """Seconds from the last INVALID_SESSION to the first IDENTIFY after it."""
        sent = self.invalid_session_times[-1]
        return min(at for at in self.identify_times if at > sent) - sent

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

    def summary(self) -> str:
        return ", ".join(f"{c.method} {c.path}" for c in self.calls[-30:])

    # -- gateway -----------------------------------------------------------------------------------------------

    async def _send(self, connection: _Connection, payload: Payload) -> None:
        text = json.dumps(payload)
        if connection.compressor is not None:
            data = connection.compressor.compress(text.encode()) + connection.compressor.flush(zlib.Z_SYNC_FLUSH)
            await connection.ws.send_bytes(data)
        else:
            await connection.ws.send_str(text)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.ws_paths.append(request.path)
        if not self.gateway_available:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        self.ws_queries.append(query)
        compressor = zlib.compressobj() if query.get("compress") == "zlib-stream" else None
        connection = _Connection(ws, query, request, compressor)
        self._connections.append(connection)
        try:
            await self._send(connection, {"op": 10, "d": {"heartbeat_interval": 41_250}})
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                await self._on_frame(connection, frame)
        finally:
            self._connections.remove(connection)
        return ws

    async def _on_frame(self, connection: _Connection, frame: Payload) -> None:
        op = frame.get("op")
        if op == 1:
            self.heartbeats += 1
            await self._send(connection, {"op": 11})
        elif op == 2:
            self.identifies.append(frame["d"])
            self.identify_times.append(time.monotonic())
            if self.refuse_privileged_intents:
                await connection.ws.close(code=4014, message=b"Disallowed intent(s).")
                return
            shard_id, count = frame["d"].get("shard", [0, 1])
            session = Session(f"session-{len(self.identifies)}", (shard_id, count))
            self.sessions[session.session_id] = session
            connection.session_id, connection.shard = session.session_id, session.shard
            ready = {
                "v": 10,
                "user": BOT,
                "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                "session_id": session.session_id,
                "resume_gateway_url": self._resume_url(),
                "shard": [shard_id, count],
                "application": {"id": APPLICATION_ID, "flags": 0},
            }
            await self._dispatch_to(connection, "READY", ready)
            if (GUILD_ID >> 22) % count == shard_id:
                await self._dispatch_to(connection, "GUILD_CREATE", payloads.guild())
            self.ready.set()
        elif op == 6:
            self.resumes.append(frame["d"])
            session = self.sessions.get(frame["d"].get("session_id"))
            if session is None or not session.valid:  # Discord: op 9 with d false, the client must IDENTIFY
                self.invalid_session_times.append(time.monotonic())
                await self._send(connection, {"op": 9, "d": False})
                return
            connection.session_id, connection.shard = session.session_id, session.shard
            connection.seq = frame["d"].get("seq") or session.seq
            await self._dispatch_to(connection, "RESUMED", {})
            self.ready.set()

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
                return 200, self._created(call, int(channel_id))
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
