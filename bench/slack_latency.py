"""Slack latency: the time from a Slack event being posted to membot until the model is called and the reply arrives.

Black-box, like Slack in HTTP mode: the real membot app and Slack adapter (Bolt, aiohttp, real Redis, the
embedded store, the configured embedder and recall indexer) receive signed Events API requests over HTTP; their
Web API calls go to a Slack stand-in and their model calls (OpenAI wire, through the real SDK) to a model stand-in
that answers at once with one ``send_message``. Both stand-ins and the event poster (Slack's side) run in a
process of their own, so they neither queue behind membot's work nor wait for its GIL; every time is a
``time.perf_counter()`` reading in that process. Per kind of message it prints p50/p99 (ms) of:

- *ack*: event posted → Slack's HTTP request answered (Slack retries after 3 s);
- *model*: event posted → the model stand-in received the chat request;
- *reply*: event posted → the stand-in received ``chat.postMessage`` with the answer;

and the CPU time membot's process (all its threads, the background indexer included) spent per message meanwhile:
on a busy machine the latencies grow with the load, this much less.

Messages go one at a time (each waits for its reply, then ``--pause`` seconds: long enough for the recall indexer
to embed the previous ones, as between people's messages; a shorter one measures a message that arrives while the
indexer embeds, which competes with it for the CPU), cycling over ``--users`` users;
the first ``--warmup`` of each kind are not counted, and the recall indexer catches up after them (so its
embedding model is loaded). Kinds: ``dm`` (a direct message) and ``mention`` (a mention in a channel, answered in
a thread; it reads the channel's recent messages each time, as it must). A mention comes twice, as Slack sends
it: an ``app_mention`` event, then its ``message`` twin, which membot drops as a duplicate.

    python bench/slack_latency.py [--messages 200] [--kinds dm mention] [--embedder local|hashing]
        [--users 4] [--pause 0.25] [--warmup 10]

Needs a Redis (REDIS_URL, default 127.0.0.1:6379); uses a throw-away key prefix and data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adapters.slack import SlackAdapter, build_slack_adapter
from bot.app import open_app
from bot.settings import Settings
from memory.redis.outbox import RecallOutbox
from memory.redis.url import sync_client

TEAM, BOT, BOT_ID = "T0BENCH", "UBOT", "BBOT"
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-token"
CHANNEL = "C0BENCH"
REPLY = "Sounds good, tell me more."


@dataclass
class Pending:
    """The message in flight: when it was posted and when each stand-in saw its consequences."""

    channel: str
    posted: float
    acked: float | None = None
    model: float | None = None
    reply: float | None = None
    text: str = ""  # what membot posted
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Figures:
    """Milliseconds from each counted event being posted, and when it was (a ``perf_counter()`` reading: the
    monotonic clock is system-wide, so membot's process can line its own readings up with these)."""

    posted: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    model: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)


class StandIns:
    """Slack's Web API and an OpenAI-compatible model, on 127.0.0.1 in one aiohttp server."""

    def __init__(self) -> None:
        self.port = 0
        self.pending: Pending | None = None
        self.calls: dict[str, int] = {}
        self.channels: dict[str, list[dict[str, Any]]] = {}
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def next_ts(self) -> str:
        return f"{time.time():.0f}.{next(self._ts):06d}"

    # --- the model: one send_message, at once ------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        if self.pending is not None and self.pending.model is None:
            self.pending.model = arrived
        body = await request.json()
        function = {"name": "send_message", "arguments": json.dumps({"message": REPLY})}
        call = {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function", "function": function}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "instant"),
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020},
            }
        )

    # --- Slack's Web API -----------------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        self.calls[method] = self.calls.get(method, 0) + 1
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        channel = str(params.get("channel") or "")
        if method == "auth.test":
            body: dict[str, Any] = {"team_id": TEAM, "user_id": BOT, "bot_id": BOT_ID, "team": "bench"}
        elif method == "chat.postMessage":
            ts = self.next_ts()
            message = {"type": "message", "user": BOT, "bot_id": BOT_ID, "text": params.get("text", ""), "ts": ts}
            self.channels.setdefault(channel, []).append(message)
            pending = self.pending
            if pending is not None and pending.channel == channel and pending.reply is None:
                pending.reply, pending.text = arrived, str(params.get("text", ""))
                pending.done.set()
            body = {"channel": channel, "ts": ts, "message": message}
        elif method == "users.info":
            user = str(params.get("user"))
            profile = {"display_name": f"User {user}", "real_name": f"User {user}"}
            body = {"user": {"id": user, "team_id": TEAM, "name": user.lower(), "is_admin": False, "profile": profile}}
        elif method == "conversations.info":
            body = {"channel": {"id": channel, "name": "bench", "is_channel": True}}
        elif method in ("conversations.history", "conversations.replies"):
            latest = float(params.get("latest") or "inf")
            limit = int(params.get("limit") or 100)
            items = [m for m in self.channels.get(channel, []) if float(m["ts"]) < latest]
            body = {"messages": items[-limit:][::-1], "has_more": False}
        elif method in ("chat.postEphemeral", "chat.delete"):
            body = {"message_ts": self.next_ts()}
        else:
            body = {"ok": False, "error": "unknown_method"}
        return web.json_response({"ok": True, **body} if body.get("ok", True) else body)

    # --- Slack's side of the Events API ----------------------------------------------------------------------------
    async def post_events(self, url: str, kind: str, first: int, count: int, users: int, pause: float) -> Figures:
        """Post events ``first`` to ``first + count`` of ``kind`` one at a time, each after the previous one's reply."""
        figures = Figures()
        async with aiohttp.ClientSession() as session:
            for index in range(first, first + count):
                user = f"U{kind.upper()}{index % users}"
                event = self._event(kind, user, index)
                self.channels.setdefault(event["channel"], []).append(event)
                pending = self.pending = Pending(event["channel"], time.perf_counter())
                await _post_event(session, url, event)
                pending.acked = time.perf_counter()
                if kind == "mention":  # the twin Slack sends too (membot subscribes to channel messages)
                    await _post_event(session, url, {**event, "type": "message", "channel_type": "channel"})
                await asyncio.wait_for(pending.done.wait(), 30)
                self.pending = None
                if pending.model is None or pending.reply is None or pending.text != REPLY:
                    raise RuntimeError(f"membot did not answer as the model said, but: {pending.text!r}")
                figures.posted.append(pending.posted)
                figures.ack.append((pending.acked - pending.posted) * 1000)
                figures.model.append((pending.model - pending.posted) * 1000)
                figures.reply.append((pending.reply - pending.posted) * 1000)
                await asyncio.sleep(pause)
        return figures

    def _event(self, kind: str, user: str, index: int) -> dict[str, Any]:
        text = f"message {index}: today I walked the dog and cooked pasta for my sister"
        event = {"type": "message", "channel": f"D{user}", "channel_type": "im", "user": user, "text": text}
        if kind == "mention":
            event = {"type": "app_mention", "channel": CHANNEL, "user": user, "text": f"<@{BOT}> {text}"}
        return {**event, "ts": self.next_ts(), "team": TEAM}


async def _post_event(session: aiohttp.ClientSession, url: str, event: dict[str, Any]) -> None:
    """One signed Events API request, as Slack sends it."""
    envelope = {
        "token": "verification-token",
        "team_id": TEAM,
        "api_app_id": "A0BENCH",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
    }
    body = json.dumps(envelope)
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    async with session.post(url, data=body.encode(), headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"membot answered an event with HTTP {response.status}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, values: list[float]) -> str:
    return f"{name} p50 {statistics.median(values):6.1f} ms, p99 {percentile(values, 0.99):6.1f} ms"


# --- the stand-ins' process ----------------------------------------------------------------------------------------


def stand_ins_process(conn: Connection) -> None:
    """Entry point of the stand-ins' process: serve, then run the loads membot's process asks for."""
    asyncio.run(_serve_stand_ins(conn))


async def _serve_stand_ins(conn: Connection) -> None:
    stand_ins = StandIns()
    await stand_ins.start()
    conn.send(stand_ins.port)
    try:
        while True:
            request = await asyncio.to_thread(conn.recv)
            if request is None:
                return
            figures = await stand_ins.post_events(*request)
            conn.send((figures, dict(stand_ins.calls)))
    finally:
        await stand_ins.stop()


class Remote:
    """membot's side of the pipe to the stand-ins' process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=stand_ins_process, args=(child,), name="slack-stand-ins", daemon=True)
        self._process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the stand-ins' process did not start")
        self.port = int(self._conn.recv())

    async def load(self, *request: object) -> tuple[Figures, dict[str, int]]:
        self._conn.send(request)
        answer: tuple[Figures, dict[str, int]] = await asyncio.to_thread(self._conn.recv)
        return answer

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


# --- membot's process ----------------------------------------------------------------------------------------------


async def drain(outbox: RecallOutbox) -> None:
    """Wait until the indexer has taken every waiting recall entry."""
    while await outbox.waiting():  # noqa: ASYNC110 (polls Redis: there is no event to wait on)
        await asyncio.sleep(0.01)


async def run(args: argparse.Namespace, remote: Remote) -> None:
    prefix = f"membot-bench-{uuid.uuid4().hex[:8]}"
    stand_ins = f"http://127.0.0.1:{remote.port}"
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            MEMBOT_REDIS_PREFIX=prefix,
            MEMBOT_DATA_DIR=Path(data_dir),
            MEMBOT_EMBEDDER=args.embedder,
            MEMBOT_LLM_PROVIDER="openai",
            MEMBOT_MODEL="instant",
            OPENAI_API_KEY="bench-key",
            OPENAI_BASE_URL=f"{stand_ins}/v1",
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=f"{stand_ins}/api/",
            SLACK_HTTP_HOST="127.0.0.1",
            SLACK_HTTP_PORT=0,
            MEMBOT_RATE_LIMIT_PER_MINUTE=1_000_000,  # the check still runs; one at a time is not abuse
        )
        try:
            async with open_app(settings) as app:
                assert app.services is not None
                adapter = build_slack_adapter(app.services)
                assert isinstance(adapter, SlackAdapter)
                serving = asyncio.create_task(adapter.run())
                await asyncio.wait_for(adapter.ready.wait(), 30)
                url = f"http://127.0.0.1:{adapter.port}/slack/events"
                print(
                    f"embedder={args.embedder}; {args.messages} messages per kind, one at a time, {args.users} users, "
                    f"pause {args.pause} s, {args.warmup} warm-up (Redis prefix {prefix})"
                )
                try:
                    calls: dict[str, int] = {}
                    for kind in args.kinds:
                        await remote.load(url, kind, 0, args.warmup, args.users, args.pause)
                        await drain(app.stores.outbox)  # the indexer (and its embedding model) warmed up too
                        cpu = time.process_time()
                        figures, calls = await remote.load(
                            url, kind, args.warmup, args.messages, args.users, args.pause
                        )
                        cpu_ms = (time.process_time() - cpu) * 1000 / args.messages
                        print(
                            f"  {kind:<7}: {line('ack', figures.ack)}; {line('model call', figures.model)}; "
                            f"{line('reply', figures.reply)}; membot CPU {cpu_ms:.1f} ms per message"
                        )
                    print("  Web API calls: " + ", ".join(f"{method} {n}" for method, n in sorted(calls.items())))
                finally:
                    await adapter.stop_accepting()
                    await adapter.drain()
                    serving.cancel()
                    await asyncio.gather(serving, return_exceptions=True)
        finally:
            client = sync_client(settings.redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200, help="messages measured per kind")
    parser.add_argument("--kinds", nargs="+", default=["dm", "mention"], choices=["dm", "mention"])
    parser.add_argument("--embedder", default="local", choices=["local", "hashing"])
    parser.add_argument("--users", type=int, default=4, help="users the messages cycle over (one agent each)")
    parser.add_argument("--pause", type=float, default=0.25, help="seconds between a reply and the next message")
    parser.add_argument("--warmup", type=int, default=10, help="messages per kind sent first and not counted")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    remote = Remote()
    try:
        asyncio.run(run(args, remote))
    finally:
        remote.close()


if __name__ == "__main__":
    main()
