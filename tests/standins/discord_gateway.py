"""The gateway half of the Discord stand-in (``discord_server.DiscordStandIn``): the WebSocket Discord's clients
keep open, its sessions, and the faults Discord documents.

HELLO, IDENTIFY → READY (+ GUILD_CREATE on the server's shard), heartbeats → ACKs, RESUME → RESUMED or, for a
session it no longer has, INVALID_SESSION ``d: false``; ``zlib-stream`` compression when asked for. Dispatches go
to the shard Discord would route them to. Faults: ``reconnect()``/``request_reconnect()`` (op 7 RECONNECT),
``invalid_session(resumable)`` (op 9; ``d: false`` ends the session), ``close_gateway(code)`` (a close frame;
4007 and 4009 end the session, the other 4000–4009 codes leave it resumable), ``drop_gateway()`` /
``restore_gateway()`` (an outage: sockets cut, new ones refused with 503 until restored). ``resume_gateway_url`` is
what READY names (default: its own gateway). Every socket's path and the time of each IDENTIFY and INVALID_SESSION
are recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from tests.standins import discord_payloads as payloads
from tests.standins.discord_payloads import APPLICATION_ID, BOT, GUILD_ID, Payload

__all__ = ["SESSION_ENDING_CLOSE_CODES", "DiscordGateway", "Session"]

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


class DiscordGateway:
    """The gateway WebSocket and its sessions; ``DiscordStandIn`` serves it at ``/gateway-ws`` on its port."""

    def __init__(self) -> None:
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
        self.refuse_privileged_intents = False  # close IDENTIFY with 4014, as when Message Content is not enabled
        self.ready = asyncio.Event()
        self._connections: list[_Connection] = []
        self._port = 0

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway-ws"

    def add_gateway_routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_get("/gateway-ws/resume", self._gateway)  # a session-specific resume URL on this host

    async def close_connections(self) -> None:
        for connection in list(self._connections):
            await connection.ws.close()

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
