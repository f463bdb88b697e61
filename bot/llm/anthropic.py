"""``ChatModel`` on the Anthropic Messages API (``anthropic.AsyncAnthropic``), with prompt caching.

Wire translation, in short:

- prompt caching, four breakpoints (``cache_control: ephemeral``, the API's maximum) in the order the API caches
  (tools, system, messages): the static system block (so tools + instructions are one prefix that survives any
  memory edit), the core memory block (survives turns without an edit or eviction), and the last block of each of
  the last two messages (``cache_conversation``): the next call, one step or one turn later, reads the prefix this
  one wrote; the second anchor keeps a hit when a step adds more than the 20 blocks the API looks back;
- the volatile status note (clock, memory counts) is the very last text block, after every breakpoint;
- a user message's images (``ChatMessage.images``) → base64 ``image`` blocks before its text;
- assistant → ``[text, tool_use…]``; ``tool`` → a user message of ``tool_result`` blocks (results first);
  same-role neighbours are merged so roles alternate; the conversation starts and ends with a user message;
- a tool call without a result gets a placeholder result and a result without its call becomes plain text, so a
  damaged queue cannot make every later request fail with a 400.

With a ``ReplyPreview`` (and ``stream`` on) the request is streamed: ``send_message`` arguments are reported as
they arrive, and the final message is the SDK's accumulation of the events (``bot.llm.streaming``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import anthropic

from bot.llm.base import TRANSPORT_ERRORS, SdkChatModel, checked, sdk_error_classifier
from bot.llm.pairing import MISSING_RESULT, pair_tool_calls
from bot.llm.retry import RetryPolicy
from bot.llm.streaming import PreviewFeed, StreamInterrupted, mentions_streaming
from bot.llm.tokens import CLAUDE_TOKEN_FACTOR, TokenCounter
from bot.llm.types import (
    ChatMessage,
    Completion,
    ContextOverflowError,
    ImageInput,
    ModelError,
    ReplyPreview,
    RequestRejected,
    SystemPrompt,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = ["AnthropicChatModel", "build_messages", "build_request", "is_overflow_message", "parse_response"]

log = logging.getLogger(__name__)

CACHE: dict[str, str] = {"type": "ephemeral"}
START_PLACEHOLDER = "(conversation continues)"
CONTINUE_PLACEHOLDER = "(continue)"
EMPTY_PLACEHOLDER = "(empty message)"

# "prompt is too long: 208310 tokens > 200000 maximum"; "input length and `max_tokens` exceed context limit: ..."
_OVERFLOW = re.compile(
    r"prompt is too long|input is too long|too many input tokens|context (window|limit|length)",
    re.IGNORECASE,
)

_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")

Block = dict[str, Any]


def is_overflow_message(status: int, message: str) -> bool:
    """Whether an error response means the prompt does not fit the context window."""
    return status == 413 or (status == 400 and bool(_OVERFLOW.search(message)))


def _tool_input(arguments: str) -> dict[str, Any]:
    """The arguments as a JSON object; anything else is carried as ``{"_raw": text}`` (never raises)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def _wire_id(call_id: str) -> str:
    """A tool_use id as the API accepts it (``[A-Za-z0-9_-]+``); ids from another provider may differ."""
    return _BAD_ID_CHARS.sub("_", call_id) or "toolu_missing"


def _text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def _image_block(image: ImageInput) -> Block:
    """An image as the Messages API takes it inline (before the text that refers to it, as Anthropic advises)."""
    return {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.base64}}


def _turns(messages: Sequence[ChatMessage]) -> list[tuple[str, list[Block]]]:
    """Neutral messages → (role, blocks), every tool_use answered by exactly one tool_result."""
    turns: list[tuple[str, list[Block]]] = []
    for msg in pair_tool_calls(messages):
        if msg.role == "tool":
            result = msg.content if msg.content.strip() else EMPTY_PLACEHOLDER
            block: Block = {"type": "tool_result", "tool_use_id": _wire_id(msg.tool_call_id or ""), "content": result}
            if msg.content == MISSING_RESULT:
                block["is_error"] = True
            turns.append(("user", [block]))
        elif msg.role == "assistant":
            blocks: list[Block] = [_text_block(msg.content)] if msg.content.strip() else []
            for call in msg.tool_calls:
                tool_input = _tool_input(call.arguments)
                blocks.append({"type": "tool_use", "id": _wire_id(call.id), "name": call.name, "input": tool_input})
            if blocks:
                turns.append(("assistant", blocks))
        else:
            text = _text_block(msg.content if msg.content.strip() else EMPTY_PLACEHOLDER)
            turns.append(("user", [*(_image_block(image) for image in msg.images), text]))
    return turns


def build_messages(
    messages: Sequence[ChatMessage], *, cache_conversation: bool = True, volatile: str = ""
) -> list[dict[str, Any]]:
    """Alternating Anthropic messages that start and end with the user, ``volatile`` as the last text block."""
    merged: list[dict[str, Any]] = []
    for role, blocks in _turns(messages):
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    for msg in merged:  # tool_result blocks must open a user message
        if msg["role"] == "user":
            msg["content"].sort(key=lambda b: b["type"] != "tool_result")
    if not merged or merged[0]["role"] != "user":
        merged.insert(0, {"role": "user", "content": [_text_block(START_PLACEHOLDER)]})
    if merged[-1]["role"] != "user" and not volatile.strip():
        merged.append({"role": "user", "content": [_text_block(CONTINUE_PLACEHOLDER)]})
    if cache_conversation:
        for msg in merged[-2:]:
            msg["content"][-1] = {**msg["content"][-1], "cache_control": CACHE}
    if volatile.strip():
        if merged[-1]["role"] == "user":
            merged[-1]["content"].append(_text_block(volatile))
        else:
            merged.append({"role": "user", "content": [_text_block(volatile)]})
    return merged


def build_request(
    system: SystemPrompt,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    *,
    cache_conversation: bool = True,
) -> dict[str, Any]:
    """The ``system``, ``messages`` and ``tools`` arguments of ``messages.create``."""
    system_blocks: list[Block] = []
    if system.static.strip():
        system_blocks.append({"type": "text", "text": system.static, "cache_control": CACHE})
    if system.dynamic.strip():
        system_blocks.append({"type": "text", "text": system.dynamic, "cache_control": CACHE})
    tool_params: list[Block] = [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
    ]
    if tool_params and not system.static.strip():  # otherwise the static block's breakpoint covers the tools
        tool_params[-1] = {**tool_params[-1], "cache_control": CACHE}
    return {
        "system": system_blocks,
        "messages": build_messages(messages, cache_conversation=cache_conversation, volatile=system.volatile),
        "tools": tool_params,
    }


def parse_response(message: anthropic.types.Message) -> Completion:
    """Text blocks joined, tool_use blocks as ToolCalls (input as JSON text), usage and stop reason."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            raw: object = block.input
            arguments = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
    usage = message.usage
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    return Completion(
        text="\n".join(t for t in texts if t),
        tool_calls=tuple(calls),
        usage=Usage(
            input_tokens=usage.input_tokens + cache_read + cache_write,
            output_tokens=usage.output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        ),
        stop_reason=message.stop_reason,
    )


_classify = sdk_error_classifier(anthropic.APITimeoutError, anthropic.APIConnectionError, anthropic.APIStatusError)


def _api_message(exc: anthropic.APIStatusError) -> str:
    message = exc.api_message if isinstance(exc.api_message, str) else exc.message
    return message[:300]


class AnthropicChatModel(SdkChatModel):
    """A ``ChatModel`` on Anthropic Messages. The SDK does not retry (``max_retries=0``); ``retry`` does."""

    provider = "anthropic"
    _client: anthropic.AsyncAnthropic

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        *,
        token_factor: float = CLAUDE_TOKEN_FACTOR,
        cache_conversation: bool = True,
        stream: bool = True,
    ) -> None:
        self.model = model
        self.retry = retry or RetryPolicy()
        self.cache_conversation = cache_conversation
        self.stream = stream
        self.counter = TokenCounter(token_factor)
        self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    async def complete(
        self,
        system: SystemPrompt,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        *,
        max_output_tokens: int,
        preview: ReplyPreview | None = None,
    ) -> Completion:
        request = build_request(system, messages, tools, cache_conversation=self.cache_conversation)
        self._log_request(messages, tools)
        arguments: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_output_tokens,
            "messages": request["messages"],
            "system": request["system"] or anthropic.omit,
            "tools": request["tools"] or anthropic.omit,
        }

        async def call(streamed: bool) -> Completion:
            if streamed:
                return await self._streamed(arguments, PreviewFeed(preview))
            if preview is not None:
                preview.restart()
            response = await self._client.messages.create(**arguments)
            return checked(parse_response, response, anthropic.types.Message)

        try:
            completion = await self._call(call, streamed=self.stream and preview is not None, classify=_classify)
        except anthropic.APIStatusError as exc:
            message = _api_message(exc)
            if is_overflow_message(exc.status_code, message):
                self._calibrate_from_overflow(system, messages, tools, message)
                raise ContextOverflowError(f"anthropic: prompt exceeds the context window: {message}") from exc
            raise RequestRejected(f"anthropic request rejected ({exc.status_code}): {message}") from exc
        except anthropic.AnthropicError as exc:
            raise ModelError(f"anthropic request failed: {type(exc).__name__}") from exc
        self._log_response(completion)
        self._calibrate(system, messages, tools, completion)
        return completion

    async def _streamed(self, arguments: dict[str, Any], feed: PreviewFeed) -> Completion:
        """One streamed request (Messages SSE): tool_use deltas go to ``feed``; the final message is the SDK's
        accumulation of every event, read by the same ``parse_response`` as a non-streamed answer."""
        ended = False
        try:
            async with self._client.messages.stream(**arguments) as stream:
                async for event in stream:
                    if event.type == "content_block_start" and event.content_block.type == "tool_use":
                        feed.name(event.index, event.content_block.name)
                    elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                        feed.arguments(event.index, event.delta.partial_json)
                    elif event.type == "message_stop":
                        ended = True
                message = stream.current_message_snapshot if ended else None
        except anthropic.APIStatusError as exc:
            if exc.status_code != 200:  # refused before the stream began: the same error as without streaming
                raise
            raise StreamInterrupted(f"error event in the stream: {_api_message(exc)}") from exc
        except TRANSPORT_ERRORS as exc:
            raise StreamInterrupted(f"stream cut: {type(exc).__name__}") from exc
        if message is None:
            raise StreamInterrupted("the stream ended before message_stop")
        return checked(parse_response, message, anthropic.types.Message)

    def _refuses_streaming(self, exc: Exception) -> bool:
        return (
            isinstance(exc, anthropic.APIStatusError)
            and 400 <= exc.status_code < 500
            and exc.status_code not in (408, 429)
            and mentions_streaming(_api_message(exc))
        )
