"""Streamed answers of the LLM stand-in, as the two APIs document them.

- Anthropic Messages (``"stream": true``): server-sent events ``message_start`` (the message with empty content and
  the input usage), ``ping``, per content block ``content_block_start`` / ``content_block_delta`` (``text_delta``,
  or ``input_json_delta`` whose ``partial_json`` pieces join to the tool input's JSON) / ``content_block_stop``,
  then ``message_delta`` (stop reason and output usage) and ``message_stop``. An error after the stream began is an
  ``event: error`` with the error body.
- OpenAI Chat Completions (``"stream": true``): ``data:`` lines of ``chat.completion.chunk`` objects (the role, then
  content pieces, tool calls whose first fragment has the id and name and the next ones argument pieces, then a chunk
  with ``finish_reason``); with ``stream_options.include_usage`` every chunk has ``"usage": null`` and one more chunk
  with empty ``choices`` carries the usage; the stream ends with ``data: [DONE]``.

Pieces are cut every ``chunk`` characters wherever that falls (inside escapes and ``\\u`` sequences too), as a
tokenizer may. Faults: ``cut_after`` events then the connection is dropped without ending the body; ``error_after``
events then an error in the stream.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["StreamPlan", "anthropic_events", "openai_events", "write_stream"]

Event = tuple[str | None, str]  # (SSE event name, data)


@dataclass(frozen=True)
class StreamPlan:
    """How one streamed answer is sent: piece size, pause between events, and faults."""

    chunk: int = 12
    delay: float = 0.0
    cut_after: int | None = None
    error_after: int | None = None
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _event(name: str, data: dict[str, Any]) -> Event:
    return name, json.dumps(data, ensure_ascii=False)


def anthropic_events(message: dict[str, Any], chunk: int) -> list[Event]:
    """The events of a Messages stream that accumulate to ``message`` (a non-streamed response body)."""
    usage = dict(message["usage"])
    output_tokens = usage.pop("output_tokens", 0)
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events = [_event("message_start", {"type": "message_start", "message": start}), _event("ping", {"type": "ping"})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"], chunk)]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            text = json.dumps(block["input"], ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in _pieces(text, chunk)]
        events.append(
            _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})
        )
        events.extend(
            _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        )
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        _event("message_delta", {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}})
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def openai_events(completion: dict[str, Any], chunk: int, *, include_usage: bool) -> list[Event]:
    """The chunks of a Chat Completions stream that accumulate to ``completion`` (a non-streamed response body)."""
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": None,
    }
    if include_usage:
        base["usage"] = None

    def data(delta: dict[str, Any], finish: str | None = None) -> Event:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return None, json.dumps({**base, "choices": [choice]}, ensure_ascii=False)

    choice = completion["choices"][0]
    message = choice["message"]
    content = message.get("content")
    events = [data({"role": "assistant", "content": "" if content else None})]
    events.extend(data({"content": piece}) for piece in _pieces(content or "", chunk))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": function["name"], "arguments": ""},
        }
        events.append(data({"tool_calls": [head]}))
        events.extend(
            data({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in _pieces(function["arguments"], chunk)
        )
    events.append(data({}, choice["finish_reason"]))
    if include_usage:
        events.append((None, json.dumps({**base, "choices": [], "usage": completion["usage"]})))
    events.append((None, "[DONE]"))
    return events


def _error_event(wire: str, plan: StreamPlan) -> Event:
    if wire == "anthropic":
        error = {"type": plan.error_type, "message": plan.error_message}
        return _event("error", {"type": "error", "error": error})
    error = {"message": plan.error_message, "type": "server_error", "param": None, "code": None}
    return None, json.dumps({"error": error})


async def write_stream(request: web.Request, wire: str, events: list[Event], plan: StreamPlan) -> web.StreamResponse:
    """Send ``events`` as ``text/event-stream``, with the plan's pauses and faults."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    if wire == "anthropic":
        response.headers["request-id"] = "req_stream"
    await response.prepare(request)
    for sent, (name, data) in enumerate(events):
        if plan.cut_after is not None and sent >= plan.cut_after:
            if request.transport is not None:
                request.transport.abort()  # the body never ends: the client sees the connection drop
            return response
        if plan.error_after is not None and sent >= plan.error_after:
            name, data = _error_event(wire, plan)
            await response.write(_sse(name, data))
            break
        await response.write(_sse(name, data))
        if plan.delay > 0:
            await asyncio.sleep(plan.delay)
    await response.write_eof()
    return response


def _sse(name: str | None, data: str) -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {data}\n\n".encode()
