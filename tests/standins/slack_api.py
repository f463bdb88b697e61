"""A stand-in for Slack's Web API (and the URLs around it) on 127.0.0.1, recording every call.

The real ``AsyncWebClient`` (through Bolt) talks to it via ``SLACK_API_URL``. It serves the Web API methods
membot uses, ``response_url`` posts of slash commands and buttons, file downloads (``url_private_download``),
the upload URLs of ``files_upload_v2``, and a Socket Mode WebSocket (``apps.connections.open``)::

    async with SlackStandIn() as slack:
        settings = ...(SLACK_API_URL=slack.api_url)
        ...
        await slack.wait_for(lambda: slack.calls_to("chat.postMessage"))

Every request becomes an :class:`ApiCall` (method name, query + form + JSON parameters merged, headers).
Messages the bot posts are kept per channel (chat.update edits them, chat.delete removes them), so
conversations.history/replies answer like Slack would; ``ratelimit`` makes a method answer 429 ``ratelimited``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["ApiCall", "SlackStandIn"]


@dataclass
class ApiCall:
    """One request as the stand-in saw it."""

    method: str  # Web API method, or "response_url", "upload", "download", "socket"
    params: dict[str, Any]
    headers: dict[str, str]
    path: str
    peer: tuple[str, int] | None = None  # the client's address and port: one port for calls on one connection
    at: float = field(default_factory=time.monotonic)  # when it arrived
    response: dict[str, Any] | None = None  # what a Web API method answered (e.g. the ``ts`` of a posted message)

    @property
    def json(self) -> dict[str, Any]:
        """For response_url posts and socket acks: the JSON body."""
        return self.params


@dataclass
class SocketPeer:
    """The Socket Mode connection of the app under test."""

    ws: web.WebSocketResponse
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    request: web.Request | None = None


class SlackStandIn:
    """Slack's Web API, files and Socket Mode endpoints, in process."""

    team_id = "T0TEST"
    bot_user_id = "UBOT"
    bot_id = "BBOT"
    app_id = "A0TEST"

    def __init__(self, bot_token: str = "xoxb-test-token", app_token: str = "xapp-test-token") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[ApiCall] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.uploads: dict[str, bytes] = {}
        self.channels: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, str] = {}  # method -> error code to answer with
        self.ratelimits: dict[str, list[int]] = {}  # method -> Retry-After (seconds) of its next 429 answers
        self.held: set[str] = set()  # methods recorded but not answered until ``release()`` (a hanging Slack)
        self._released = asyncio.Event()
        self.socket: SocketPeer | None = None
        self.sockets_opened = 0
        self.socket_available = True  # False: Socket Mode connections are refused (503), as in an outage
        self._socket_connected = asyncio.Event()
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self.socket is not None and not self.socket.ws.closed:
            await self.socket.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # --- test set-up ---------------------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, *, is_admin: bool = False, is_owner: bool = False) -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name.lower(),
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_bot": False,
            "profile": {"display_name": name, "real_name": name},
        }

    def add_file(self, file_id: str, name: str, content: bytes, mimetype: str = "text/plain") -> dict[str, Any]:
        """Register a file; returns the file object as a message event carries it."""
        meta = {"id": file_id, "name": name, "title": name, "mimetype": mimetype, "size": len(content)}
        self.files[file_id] = (meta, content)
        return dict(meta)

    def record_message(self, channel: str, message: dict[str, Any]) -> None:
        """A message that exists in Slack (the harness records what users "said")."""
        self.channels.setdefault(channel, []).append(dict(message))

    def delete_message(self, channel: str, ts: str) -> None:
        """A user deletes a message (membot's too: in a DM each side may delete the other's messages)."""
        self.channels[channel] = [m for m in self.channels.get(channel, []) if m.get("ts") != ts]

    def hold(self, method: str) -> None:
        """Calls of ``method`` hang (recorded, unanswered) until ``release``."""
        self.held.add(method)
        self._released.clear()

    def release(self) -> None:
        """Answer the held calls still waiting, and answer new ones at once."""
        self.held.clear()
        self._released.set()

    def new_response_url(self) -> str:
        return f"{self.base_url}/response/{uuid.uuid4().hex}"

    def next_ts(self) -> str:
        return f"{time.time():.0f}.{next(self._ts):06d}"

    # --- queries -------------------------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Parameters of every chat.postMessage (optionally to one channel)."""
        return [
            c.params for c in self.calls_to("chat.postMessage") if channel is None or c.params.get("channel") == channel
        ]

    def updates(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Parameters of every chat.update of one message."""
        return [
            c.params
            for c in self.calls_to("chat.update")
            if c.params.get("channel") == channel and c.params.get("ts") == ts
        ]

    def bot_messages(self, channel: str) -> list[dict[str, Any]]:
        """The bot's messages in ``channel`` as they are now (posted, updated, not deleted), oldest first."""
        return [m for m in self.channels.get(channel, []) if m.get("bot_id") == self.bot_id]

    def ratelimit(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` as Slack does over its rate limit: HTTP 429,
        ``{"ok": false, "error": "ratelimited"}`` and a ``Retry-After`` header in seconds."""
        self.ratelimits.setdefault(method, []).extend([retry_after] * times)

    async def wait_for(self, predicate: Callable[[], object], seconds: float = 10.0) -> None:
        """Poll until ``predicate()`` is true; fail after ``seconds`` listing the calls seen."""
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; calls so far: {[c.method for c in self.calls]}")
            await asyncio.sleep(0.02)

    # --- Web API ---------------------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        return params

    def _record(self, method: str, request: web.Request, params: dict[str, Any]) -> ApiCall:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        call = ApiCall(method, params, dict(request.headers), request.path, tuple(peer) if peer else None)
        self.calls.append(call)
        return call

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        call = self._record(method, request, params)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or params.get("token")
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        if self.ratelimits.get(method):
            retry_after = self.ratelimits[method].pop(0)
            body = {"ok": False, "error": "ratelimited"}
            return web.json_response(body, status=429, headers={"Retry-After": str(retry_after)})
        if method in self.held:
            await self._released.wait()
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        body = handler(params)
        answer = {"ok": True, **body} if body.get("ok", True) else body
        call.response = answer
        return web.json_response(answer)

    def _m_auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://membot-test.slack.com/",
            "team": "membot test",
            "user": "membot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params["channel"])
        ts = self.next_ts()
        message = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "text": params.get("text", "")}
        message["ts"] = ts
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.record_message(channel, message)
        return {"channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        """chat.update: the bot edits one of its messages. Errors as Slack documents them: ``message_not_found``,
        ``cant_update_message`` (not the bot's), ``no_text``, ``msg_too_long`` (over 40,000 characters)."""
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        text = str(params.get("text") or "")
        if not text and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if len(text) > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        message = next((m for m in self.channels.get(channel, []) if m.get("ts") == ts), None)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("bot_id") != self.bot_id:
            return {"ok": False, "error": "cant_update_message"}
        message["text"] = text
        message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
        return {"channel": channel, "ts": ts, "text": text, "message": dict(message)}

    def _m_chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        """chat.delete: the bot removes one of its messages (``message_not_found`` when there is none)."""
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        messages = self.channels.get(channel, [])
        kept = [m for m in messages if not (m.get("ts") == ts and m.get("bot_id") == self.bot_id)]
        if len(kept) == len(messages):
            return {"ok": False, "error": "message_not_found"}
        self.channels[channel] = kept
        return {"channel": channel, "ts": ts}

    def _m_chat_postEphemeral(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"message_ts": self.next_ts()}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        return {"user": user} if user else {"ok": False, "error": "user_not_found"}

    def _m_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel"))
        return {"channel": {"id": channel, "name": f"chan-{channel.lower()}", "is_channel": True}}

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"channel": {"id": "D" + str(params.get("users")).split(",")[0]}}

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        latest = float(params.get("latest") or "inf")
        items = [
            m
            for m in self.channels.get(str(params.get("channel")), [])
            if (not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")) and float(m["ts"]) < latest
        ]
        limit = int(params.get("limit") or 100)
        return {"messages": sorted(items, key=lambda m: float(m["ts"]), reverse=True)[:limit], "has_more": False}

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = str(params.get("ts"))
        latest = float(params.get("latest") or "inf")
        items = [
            m
            for m in self.channels.get(str(params.get("channel")), [])
            if (m.get("ts") == thread or m.get("thread_ts") == thread) and float(m["ts"]) < latest
        ]
        return {"messages": sorted(items, key=lambda m: float(m["ts"])), "has_more": False}

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        return {"view": json.loads(view) if isinstance(view, str) else view}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._m_views_publish(params)

    def _m_files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.files.get(str(params.get("file")))
        if found is None:
            return {"ok": False, "error": "file_not_found"}
        meta = dict(found[0])
        meta["url_private_download"] = f"{self.base_url}/files-pri/{meta['id']}/{meta['name']}"
        return {"file": meta}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"FUP{next(self._ts)}"
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        return {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    def _m_apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    # --- the URLs around the Web API ---------------------------------------------------------------------------
    async def _response_url(self, request: web.Request) -> web.Response:
        self._record("response_url", request, await request.json())
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.uploads[request.match_info["file_id"]] = data
        self._record("upload", request, {"file_id": request.match_info["file_id"], "bytes": len(data)})
        return web.Response(text=f"OK - {len(data)}")

    async def _download(self, request: web.Request) -> web.Response:
        self._record("download", request, {"file_id": request.match_info["file_id"]})
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(status=403, text="no token")
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[1], content_type=found[0].get("mimetype") or "application/octet-stream")

    # --- Socket Mode -------------------------------------------------------------------------------------------
    async def drop_socket(self) -> None:
        """An outage: the Socket Mode connection is cut (no close frame) and new ones are refused until restored."""
        self.socket_available = False
        if self.socket is not None and self.socket.request is not None and self.socket.request.transport:
            self.socket.request.transport.abort()

    async def request_refresh(self) -> None:
        """What Slack sends before it retires a connection: a ``disconnect`` envelope, then the close."""
        assert self.socket is not None
        await self.socket.ws.send_json({"type": "disconnect", "reason": "refresh_requested", "debug_info": {}})

    def restore_socket(self) -> None:
        self.socket_available = True

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self.socket_available:
            return web.Response(status=503, text="socket mode unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets_opened += 1
        self.socket = SocketPeer(ws, request=request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": self.app_id}})
        self._socket_connected.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                self.socket.acks[str(data.get("envelope_id"))] = data
                self._record("socket", request, data)
        return ws

    async def socket_send(self, envelope_type: str, payload: dict[str, Any], **extra: Any) -> str:
        """Push an envelope to the connected app; returns its envelope id (the app's ack carries it)."""
        await asyncio.wait_for(self._socket_connected.wait(), 10)
        assert self.socket is not None
        envelope_id = uuid.uuid4().hex
        envelope = {"envelope_id": envelope_id, "type": envelope_type, "payload": payload, **extra}
        envelope.setdefault("accepts_response_payload", envelope_type != "events_api")
        await self.socket.ws.send_json(envelope)
        return envelope_id
