"""A scripted LLM stand-in that speaks the Anthropic Messages and OpenAI Chat Completions wire formats.

The real SDKs talk to it over HTTP on 127.0.0.1. It runs an aiohttp server in a daemon thread with its own event
loop, so it serves async tests and tests that run a subprocess synchronously alike::

    with ScriptedLLMServer() as llm:
        llm.push(ScriptedReply(tool_calls=[("send_message", {"message": "hi"})]), ScriptedReply(text="done"))
        model = AnthropicChatModel("claude-test", api_key="test", base_url=llm.anthropic_base_url)
        ...
        assert llm.requests[0].tools == [...]

Replies come from the FIFO queue (``push``) first, then from the handler; with neither, the answer is "ok".
A request with ``"stream": true`` gets the same answer as server-sent events (``tests/standins/llm_stream.py``);
``refuse_streaming`` makes it a 400 instead, as from a server that cannot stream.

Usage is reported as the APIs document it (``tests/standins/llm_usage.py``): prompt tokens counted on the request
(times ``token_scale``), prompt caching (Anthropic breakpoints, OpenAI automatic prefixes) with its cache read and
write fields; with ``context_window`` set, a prompt that does not fit (with its ``max_tokens``) is refused with the
provider's overflow error, and counted in ``overflows``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import math
import socket
import struct
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.standins.images import image_error
from tests.standins.llm_stream import StreamPlan, anthropic_events, openai_events, write_stream
from tests.standins.llm_usage import STATUS_PREFIX, CacheUsage, PromptCaches, prompt_tokens

__all__ = ["ObservedRequest", "ScriptedLLMServer", "ScriptedReply", "StreamPlan", "hashing_embedding"]


@dataclass
class ObservedRequest:
    """A chat request as the stand-in received it, plus a provider-neutral view of it."""

    wire: str  # "anthropic" or "openai"
    model: str
    system: str  # whole system prompt (anthropic: text blocks joined with "\n\n"; openai: system messages)
    # neutral view: {"role": "user"|"assistant"|"tool", "content": str,
    #                "tool_calls": [{"id", "name", "arguments" (str)}], "tool_call_id": str | None,
    #                "images" (only when the message has some): [{"media_type", "data" (base64)}]}
    messages: list[dict[str, Any]]
    tools: list[str]  # names of the tools offered
    max_tokens: int | None
    raw: dict[str, Any]  # the JSON body as received
    headers: dict[str, str]
    # membot's status note (``[system] Status …``), split off the end of the conversation; ``system`` ends with it
    status: str = ""
    # what the stand-in reported: {"input": whole prompt, "cache_read": …, "cache_write": …}; empty for errors
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def images(self) -> list[dict[str, str]]:
        """Every image of the request, in order: {"media_type", "data" (base64)}."""
        return [image for message in self.messages for image in message.get("images", ())]


@dataclass
class ScriptedReply:
    """What the stand-in answers to one chat request."""

    text: str = ""  # inner monologue / plain text
    # (name, arguments dict, or a raw str that may be malformed JSON)
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    status: int = 200  # non-200: an error response in that wire format's error shape
    error_type: str | None = None  # e.g. "rate_limit_error", "overloaded_error", "invalid_request_error"
    error_message: str | None = None  # e.g. "prompt is too long: 250000 tokens > 200000 maximum"
    delay: float = 0.0  # seconds to wait before answering (for timeout tests)
    input_tokens: int | None = None  # usage to report (default: counted, see llm_usage.py)
    # -- extensions (all optional) --
    error_code: str | None = None  # OpenAI error "code" (default: error_type), e.g. "context_length_exceeded"
    output_tokens: int | None = None  # usage to report (default: a rough estimate)
    # anthropic cache_read_input_tokens / openai cached_tokens, and anthropic cache_creation_input_tokens (default:
    # simulated prompt caching; with ``input_tokens`` given, 0)
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    raw_body: dict[str, Any] | None = None  # sent verbatim (with ``status``) instead of a generated body
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    hold: threading.Event | None = None  # answer only once this is set (or the server stops): a turn held open
    # a body that is not the API's JSON (an HTML error page, an empty or truncated body), sent with ``status``
    body_text: str | None = None
    content_type: str = "application/json"
    # how the answer is streamed when the request asks for it (``tests/standins/llm_stream.py``): pieces, pauses,
    # a connection cut or an error event mid-stream
    stream: StreamPlan = field(default_factory=StreamPlan)


Handler = Callable[[ObservedRequest], ScriptedReply]

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _default_error_type(wire: str, status: int) -> str:
    if wire == "anthropic":
        return _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if status == 429:
        return "rate_limit_exceeded"
    return "server_error" if status >= 500 else "invalid_request_error"


def _text_of(content: Any) -> str:
    """Text of a message content that is a string or a list of blocks/parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return str(content)


def _neutral(
    role: str,
    content: str = "",
    tool_calls: list[dict[str, str]] | None = None,
    tool_call_id: str | None = None,
    images: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    message = {"role": role, "content": content, "tool_calls": tool_calls or [], "tool_call_id": tool_call_id}
    if images:
        message["images"] = images
    return message


def _anthropic_images(blocks: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {"media_type": str(source.get("media_type")), "data": str(source.get("data"))}
        for b in blocks
        if b.get("type") == "image" and isinstance(source := b.get("source"), dict)
    ]


def _openai_images(content: Any) -> list[dict[str, str]]:
    if not isinstance(content, list):
        return []
    images = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            head, _, data = str((part.get("image_url") or {}).get("url", "")).partition(";base64,")
            images.append({"media_type": head.removeprefix("data:"), "data": data})
    return images


def _is_status(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and str(block.get("text")).startswith(STATUS_PREFIX)


def _with_status(system: str, status: str) -> str:
    return f"{system}\n\n{status}" if status else system


def _observe_anthropic(body: dict[str, Any], headers: dict[str, str]) -> ObservedRequest:
    system = body.get("system") or ""
    system_text = system if isinstance(system, str) else "\n\n".join(_text_of([b]) for b in system)
    wire_messages = list(body.get("messages", []))
    status = ""
    last = wire_messages[-1] if wire_messages else None
    if (
        last
        and last.get("role") == "user"
        and isinstance(last.get("content"), list)
        and _is_status(last["content"][-1])
    ):
        status = str(last["content"][-1]["text"])
        rest = last["content"][:-1]
        wire_messages[-1:] = [{**last, "content": rest}] if rest else []
    messages: list[dict[str, Any]] = []
    for msg in wire_messages:
        role, content = msg.get("role"), msg.get("content")
        if isinstance(content, str):
            messages.append(_neutral(role, content))
            continue
        blocks = [b for b in content or [] if isinstance(b, dict)]
        if role == "assistant":
            calls = []
            for b in blocks:
                if b.get("type") == "tool_use":
                    args = b.get("input")
                    calls.append(
                        {
                            "id": b.get("id", ""),
                            "name": b.get("name", ""),
                            "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                        }
                    )
            messages.append(_neutral("assistant", _text_of(blocks), calls))
            continue
        for b in blocks:
            if b.get("type") == "tool_result":
                messages.append(_neutral("tool", _text_of(b.get("content")), tool_call_id=b.get("tool_use_id")))
        if any(b.get("type") in ("text", "image") for b in blocks):
            messages.append(_neutral(role, _text_of(blocks), images=_anthropic_images(blocks)))
    return ObservedRequest(
        wire="anthropic",
        model=str(body.get("model", "")),
        system=_with_status(system_text, status),
        messages=messages,
        tools=[str(t.get("name", "")) for t in body.get("tools") or []],
        max_tokens=body.get("max_tokens"),
        raw=body,
        headers=headers,
        status=status,
    )


def _split_status(text: str) -> tuple[str, str]:
    """(message, status note) of a user message's text that may end with membot's status note."""
    if text.startswith(STATUS_PREFIX):
        return "", text
    head, sep, tail = text.rpartition("\n\n" + STATUS_PREFIX)
    return (head, STATUS_PREFIX + tail) if sep else (text, "")


def _observe_openai(body: dict[str, Any], headers: dict[str, str]) -> ObservedRequest:
    system_parts: list[str] = []
    messages: list[dict[str, Any]] = []
    wire_messages = list(body.get("messages", []))
    status = ""
    if wire_messages and wire_messages[-1].get("role") == "user":
        text, status = _split_status(_text_of(wire_messages[-1].get("content")))
        if status:
            wire_messages[-1:] = [{**wire_messages[-1], "content": text}] if text else []
    for msg in wire_messages:
        role, text = msg.get("role"), _text_of(msg.get("content"))
        if role in ("system", "developer"):
            system_parts.append(text)
        elif role == "assistant":
            calls = [
                {
                    "id": c.get("id", ""),
                    "name": (c.get("function") or {}).get("name", ""),
                    "arguments": (c.get("function") or {}).get("arguments", ""),
                }
                for c in msg.get("tool_calls") or []
            ]
            messages.append(_neutral("assistant", text, calls))
        elif role == "tool":
            messages.append(_neutral("tool", text, tool_call_id=msg.get("tool_call_id")))
        else:
            messages.append(_neutral(str(role), text, images=_openai_images(msg.get("content"))))
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    return ObservedRequest(
        wire="openai",
        model=str(body.get("model", "")),
        system=_with_status("\n\n".join(system_parts), status),
        messages=messages,
        tools=[str((t.get("function") or {}).get("name", "")) for t in body.get("tools") or []],
        max_tokens=max_tokens,
        raw=body,
        headers=headers,
        status=status,
    )


def _estimate_tokens(payload: Any) -> int:
    return max(1, len(json.dumps(payload, ensure_ascii=False)) // 4)


def _arguments_text(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _anthropic_body(reply: ScriptedReply, req: ObservedRequest, usage: CacheUsage) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for name, arguments in reply.tool_calls:
        tool_input: Any = arguments
        if isinstance(arguments, str):
            # A real API always sends an object; a misbehaving gateway may not. Malformed text goes out as a string.
            try:
                tool_input = json.loads(arguments)
            except ValueError:
                tool_input = arguments
        content.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": tool_input})
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": content,
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.uncached,
            "output_tokens": reply.output_tokens if reply.output_tokens is not None else _estimate_tokens(content),
            "cache_read_input_tokens": usage.cache_read,
            "cache_creation_input_tokens": usage.cache_write,
            "cache_creation": {"ephemeral_5m_input_tokens": usage.cache_write, "ephemeral_1h_input_tokens": 0},
        },
    }


def _openai_body(reply: ScriptedReply, req: ObservedRequest, usage: CacheUsage) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": _arguments_text(arguments)},
            }
            for name, arguments in reply.tool_calls
        ]
    prompt = usage.prompt
    completion = reply.output_tokens if reply.output_tokens is not None else _estimate_tokens(message)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read, "audio_tokens": 0},
        },
    }


def _error_body(wire: str, reply: ScriptedReply) -> dict[str, Any]:
    error_type = reply.error_type or _default_error_type(wire, reply.status)
    message = reply.error_message or f"scripted error {reply.status}"
    if wire == "anthropic":
        return {"type": "error", "error": {"type": error_type, "message": message}}
    code = reply.error_code or reply.error_type
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def hashing_embedding(text: str, dimensions: int = 384) -> list[float]:
    """A deterministic unit vector from hashed lowercase words (and their bigrams); no model needed."""
    vector = [0.0] * dimensions
    words = [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if w]
    features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    for feature in features or [""]:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


EMBEDDING_MAX_TOKENS = 8192  # per input, as OpenAI's embedding models (tokens estimated as characters / 4)
_EMBEDDING_SIZES = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class ScriptedLLMServer:
    """An HTTP stand-in for Anthropic and OpenAI on 127.0.0.1 (random port), run in a background thread."""

    def __init__(self, handler: Handler | None = None) -> None:
        self._handler = handler
        self._queue: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self.requests: list[ObservedRequest] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.handler_errors: list[str] = []  # tracebacks of exceptions raised by the handler
        self.in_flight = 0  # chat requests being answered right now
        self.max_in_flight = 0  # the most chat requests ever answered at once
        self.embeddings_down = False  # answer embedding requests with 503 (an outage of the embeddings API)
        self.embedding_delay = 0.0  # seconds each embedding request takes (the real API: ~0.1-0.5 s)
        self.token_scale = 1.0  # the model's tokens per cl100k token (usage counts, cache sizes, the window)
        self.context_window: int | None = None  # refuse prompts that do not fit (prompt + max_tokens > window)
        self.cache_min_tokens: int | None = None  # the shortest cacheable prefix (default: the provider's 1,024)
        self.overflows = 0  # requests refused because the prompt did not fit the window
        self.accepts_images = True  # False: a text-only model, which refuses any image (as the APIs do)
        self.image_refusals: list[str] = []  # messages of the 400s sent for images the API would not take
        self.refuse_streaming = False  # answer ``"stream": true`` with a 400, as a server that cannot stream
        self.streamed = 0  # answers sent as a stream
        self._caches = PromptCaches()
        # optional: a key per request (e.g. the agent it serves); in_flight_by/max_in_flight_by count by that key
        self.concurrency_key: Callable[[ObservedRequest], str | None] | None = None
        self.in_flight_by: dict[str, int] = {}
        self.max_in_flight_by: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("ScriptedLLMServer already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(sock))
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="scripted-llm-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread = None
            sock.close()
            raise RuntimeError("scripted LLM server failed to start") from failure[0]

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> ScriptedLLMServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _serve(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._anthropic_messages)
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/v1/embeddings", self._openai_embeddings)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()  # wakes delayed replies
        if self._runner is not None:
            await self._runner.cleanup()

    # -- scripting -------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("ScriptedLLMServer is not started")
        return self._port

    @property
    def anthropic_base_url(self) -> str:
        """What ANTHROPIC_BASE_URL should be (the SDK appends /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """What OPENAI_BASE_URL should be (the SDK appends /chat/completions)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *replies: ScriptedReply) -> None:
        """Queue replies; they are used in order before the handler is asked."""
        with self._lock:
            self._queue.extend(replies)

    def set_handler(self, handler: Handler | None) -> None:
        with self._lock:
            self._handler = handler

    @property
    def pending(self) -> int:
        """How many queued replies have not been used yet."""
        with self._lock:
            return len(self._queue)

    def _next_reply(self, req: ObservedRequest) -> ScriptedReply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            handler = self._handler
        return handler(req) if handler is not None else ScriptedReply(text="ok")

    # -- endpoints -------------------------------------------------------------------------------------------

    async def _chat(self, request: web.Request, wire: str) -> web.StreamResponse:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer_chat(request, wire)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer_chat(self, request: web.Request, wire: str) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return self._error(wire, ScriptedReply(status=400, error_message="body is not valid JSON"))
        headers = dict(request.headers)
        observe = _observe_anthropic if wire == "anthropic" else _observe_openai
        try:
            observed = observe(body, headers)
        except Exception:
            observed = ObservedRequest(wire, str(body.get("model", "")), "", [], [], None, body, headers)
        with self._lock:
            self.requests.append(observed)
            key = self.concurrency_key(observed) if self.concurrency_key is not None else None
            if key is not None:
                self.in_flight_by[key] = self.in_flight_by.get(key, 0) + 1
                self.max_in_flight_by[key] = max(self.max_in_flight_by.get(key, 0), self.in_flight_by[key])
        try:
            return await self._reply_to(request, observed, body, wire)
        finally:
            if key is not None:
                with self._lock:
                    self.in_flight_by[key] -= 1

    async def _reply_to(
        self, request: web.Request, observed: ObservedRequest, body: dict[str, Any], wire: str
    ) -> web.StreamResponse:
        streamed = bool(body.get("stream"))
        if streamed and self.refuse_streaming:
            return self._error(wire, ScriptedReply(status=400, error_message="this server does not support stream"))
        refused = image_error(wire, body, accepts_images=self.accepts_images)
        if refused is not None:
            message, code = refused
            with self._lock:
                self.image_refusals.append(message)
            return self._error(wire, ScriptedReply(status=400, error_message=message, error_code=code))
        overflow = self._overflow(observed, body, wire)
        if overflow is not None:
            return overflow
        try:
            reply = self._next_reply(observed)
        except Exception:
            tb = traceback.format_exc()
            with self._lock:
                self.handler_errors.append(tb)
            return self._error(wire, ScriptedReply(status=500, error_message=f"stand-in handler raised:\n{tb}"))
        if reply.hold is not None:
            await self._wait_for_release(reply.hold)
        if reply.delay > 0 and self._stopping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), reply.delay)
        if reply.raw_body is not None:
            return web.json_response(reply.raw_body, status=reply.status, headers=reply.headers)
        if reply.body_text is not None:
            headers = {"Content-Type": reply.content_type, **reply.headers}
            return web.Response(body=reply.body_text.encode(), status=reply.status, headers=headers)
        if reply.status != 200:
            return self._error(wire, reply)
        usage = self._usage(reply, body, wire)
        observed.usage = {"input": usage.prompt, "cache_read": usage.cache_read, "cache_write": usage.cache_write}
        make = _anthropic_body if wire == "anthropic" else _openai_body
        answer = make(reply, observed, usage)
        if not streamed:
            return web.json_response(answer, headers=reply.headers)
        with self._lock:
            self.streamed += 1
        if wire == "anthropic":
            events = anthropic_events(answer, reply.stream.chunk)
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = openai_events(answer, reply.stream.chunk, include_usage=include_usage)
        return await write_stream(request, wire, events, reply.stream)

    def _usage(self, reply: ScriptedReply, body: dict[str, Any], wire: str) -> CacheUsage:
        """The scripted usage, or the request counted and billed through the prompt caches."""
        if reply.input_tokens is None:
            usage = self._caches.account(wire, body, self.token_scale, min_tokens=self.cache_min_tokens)
            read = usage.cache_read if reply.cache_read_tokens is None else reply.cache_read_tokens
            write = usage.cache_write if reply.cache_write_tokens is None else reply.cache_write_tokens
            return CacheUsage(prompt=max(usage.prompt, read + write), cache_read=read, cache_write=write)
        read, write = reply.cache_read_tokens or 0, reply.cache_write_tokens or 0
        if wire == "anthropic":  # input_tokens is what Anthropic reports: the part not read or written
            return CacheUsage(prompt=reply.input_tokens + read + write, cache_read=read, cache_write=write)
        return CacheUsage(prompt=reply.input_tokens, cache_read=read, cache_write=write)

    def _overflow(self, observed: ObservedRequest, body: dict[str, Any], wire: str) -> web.Response | None:
        """The provider's overflow error when ``context_window`` is set and the prompt does not fit."""
        if self.context_window is None:
            return None
        prompt = math.ceil(len(prompt_tokens(wire, body)) * self.token_scale)
        wanted = observed.max_tokens or 0
        if prompt + wanted <= self.context_window:
            return None
        with self._lock:
            self.overflows += 1
        if wire == "anthropic":
            message = (
                f"input length and `max_tokens` exceed context limit: {prompt} + {wanted} > {self.context_window}, "
                "decrease input length or `max_tokens` and try again"
            )
            return self._error(wire, ScriptedReply(status=400, error_message=message))
        message = (
            f"This model's maximum context length is {self.context_window} tokens. However, you requested "
            f"{prompt + wanted} tokens ({prompt} in the messages, {wanted} in the completion). Please reduce the "
            "length of the messages or completion."
        )
        reply = ScriptedReply(status=400, error_message=message, error_code="context_length_exceeded")
        return self._error(wire, reply)

    async def _wait_for_release(self, hold: threading.Event) -> None:
        """Poll the thread-safe ``hold`` (set from the test's thread) until it is set or the server stops."""
        stopping = self._stopping or asyncio.Event()
        while not hold.is_set() and not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.01)

    def _error(self, wire: str, reply: ScriptedReply) -> web.Response:
        headers = {"retry-after": "0"} if reply.status == 429 else {}
        headers.update(reply.headers)
        if wire == "anthropic":
            headers.setdefault("request-id", f"req_{uuid.uuid4().hex[:24]}")
        return web.json_response(_error_body(wire, reply), status=reply.status, headers=headers)

    async def _anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, "anthropic")

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, "openai")

    async def _openai_embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.embeddings_down:
            error = {"error": {"message": "The server is overloaded.", "type": "server_error", "code": None}}
            return web.json_response(error, status=503)
        with self._lock:
            self.embedding_requests.append(body)
        if self.embedding_delay > 0:
            await asyncio.sleep(self.embedding_delay)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        longest = max((len(str(t)) // 4 for t in texts), default=0)
        if longest > EMBEDDING_MAX_TOKENS:  # as the real API: one input over the model's limit fails the request
            message = (
                f"This model's maximum context length is {EMBEDDING_MAX_TOKENS} tokens, however you requested "
                f"{longest} tokens. Please reduce your prompt."
            )
            error = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
            return web.json_response(error, status=400)
        dimensions = int(body.get("dimensions") or _EMBEDDING_SIZES.get(body.get("model", ""), 384))
        data = []
        for index, text in enumerate(texts):
            vector = hashing_embedding(text if isinstance(text, str) else json.dumps(text), dimensions)
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(max(1, len(str(t)) // 4) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        if "anthropic-version" in request.headers:
            model = {"id": "claude-test", "type": "model", "display_name": "Claude (stand-in)", "created_at": 0}
            return web.json_response({"data": [model], "has_more": False, "first_id": "claude-test", "last_id": None})
        model = {"id": "gpt-test", "object": "model", "created": 0, "owned_by": "stand-in"}
        return web.json_response({"object": "list", "data": [model]})
