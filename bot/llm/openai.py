"""``ChatModel`` on OpenAI Chat Completions (``openai.AsyncOpenAI``), also for OpenAI-compatible servers.

vLLM, Ollama, llama.cpp and gateways are reached through ``base_url``. Their quirks handled here: tool calls
without ids (ids are made up), ``content: null``, missing usage, and servers that parse the arguments of past
tool calls (malformed arguments are sent back wrapped as ``{"_raw": text}``; well-formed ones byte for byte).
A user message's images become ``image_url`` content parts with base64 ``data:`` URLs, after its text.
A tool call without a result gets a placeholder result and a result without its call becomes user text, so a
damaged queue cannot make every later request fail with a 400.

Prompt caching is automatic on OpenAI (prompts of 1,024 tokens and more, exact prefixes): the system message
(instructions, then core memory) comes first and the volatile status note last, appended to the final user message
(or as one more user message after a function result), so consecutive calls of an agent share their prefix.
``prompt_cache_key`` (one per agent and scope, ``SystemPrompt.cache_key``) is sent to OpenAI itself, where it keeps
an agent's requests on the machines that hold its prefix; other servers may reject unknown fields and do not get it.

With a ``ReplyPreview`` (and ``stream`` on) the request is streamed (``stream_options.include_usage`` for the usage
chunk): tool call argument fragments are reported as they arrive, and the chunks are joined into the
``ChatCompletion`` that ``parse_response`` reads, as without streaming (``bot.llm.openai_stream``).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from bot.llm.base import TRANSPORT_ERRORS, MalformedResponse, SdkChatModel, checked, sdk_error_classifier
from bot.llm.openai_stream import ChunkAccumulator
from bot.llm.pairing import pair_tool_calls
from bot.llm.retry import RetryPolicy
from bot.llm.streaming import PreviewFeed, StreamInterrupted, mentions_streaming
from bot.llm.tokens import GPT_TOKEN_FACTOR, TokenCounter
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

__all__ = ["OpenAIChatModel", "build_messages", "build_tools", "is_overflow_error", "parse_response"]

log = logging.getLogger(__name__)


# OpenAI: code "context_length_exceeded"; vLLM: "This model's maximum context length is 4096 tokens..."; llama.cpp:
# "the request exceeds the available context size".
_OVERFLOW = re.compile(
    r"maximum context length|context length|context window|context size|prompt is too long|too many tokens",
    re.IGNORECASE,
)


def is_overflow_error(status: int, code: str | None, message: str) -> bool:
    """Whether an error response means the prompt does not fit the context window."""
    if code == "context_length_exceeded":
        return True
    return status in (400, 413) and bool(_OVERFLOW.search(message))


def _wire_arguments(arguments: str) -> str:
    """Arguments to send back: the raw text when it is JSON, else wrapped so strict servers can parse it."""
    try:
        json.loads(arguments)
    except ValueError:
        return json.dumps({"_raw": arguments}, ensure_ascii=False)
    return arguments


def _wire_call(call: ToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": _wire_arguments(call.arguments)}
    return {"id": call.id, "type": "function", "function": function}


def _image_part(image: ImageInput) -> dict[str, Any]:
    """An image as a Chat Completions content part: a base64 ``data:`` URL."""
    return {"type": "image_url", "image_url": {"url": f"data:{image.media_type};base64,{image.base64}"}}


def build_messages(system: SystemPrompt, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """One system message (static then dynamic), the conversation with every tool call answered once, then the
    volatile status note."""
    wire: list[dict[str, Any]] = [{"role": "system", "content": system.text()}]
    for msg in pair_tool_calls(messages):
        if msg.role == "tool":
            wire.append({"role": "tool", "tool_call_id": msg.tool_call_id, "content": msg.content})
        elif msg.role == "assistant" and msg.tool_calls:
            calls = [_wire_call(c) for c in msg.tool_calls]
            wire.append({"role": "assistant", "content": msg.content or None, "tool_calls": calls})
        elif msg.images:
            parts = [{"type": "text", "text": msg.content}, *(_image_part(image) for image in msg.images)]
            wire.append({"role": msg.role, "content": parts})
        else:
            wire.append({"role": msg.role, "content": msg.content})
    if system.volatile.strip():
        last = wire[-1]
        if len(wire) > 1 and last["role"] == "user" and isinstance(last["content"], str):
            wire[-1] = {**last, "content": f"{last['content']}\n\n{system.volatile}"}
        else:
            wire.append({"role": "user", "content": system.volatile})
    return wire


def build_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_response(response: ChatCompletion) -> Completion:
    """The first choice as a Completion; tool calls keep their raw arguments text, missing ids are made up."""
    if not response.choices:
        raise MalformedResponse("openai response had no choices")
    choice = response.choices[0]
    message = choice.message
    calls: list[ToolCall] = []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None) or getattr(call, "custom", None)
        if function is None:
            continue
        arguments: object = getattr(function, "arguments", None)
        if arguments is None:
            arguments = getattr(function, "input", None)
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        calls.append(ToolCall(id=call.id or _new_call_id(), name=function.name or "", arguments=arguments))
    if not calls and message.function_call is not None:  # legacy single function call
        legacy = message.function_call
        calls.append(ToolCall(id=_new_call_id(), name=legacy.name or "", arguments=legacy.arguments or ""))
    usage = response.usage
    cached = 0
    if usage is not None and usage.prompt_tokens_details is not None:
        cached = usage.prompt_tokens_details.cached_tokens or 0
    content: object = message.content
    return Completion(
        text=content if isinstance(content, str) else "",
        tool_calls=tuple(calls),
        usage=Usage(
            input_tokens=(usage.prompt_tokens or 0) if usage else 0,
            output_tokens=(usage.completion_tokens or 0) if usage else 0,
            cache_read_tokens=cached,  # OpenAI reports no cache writes: caching is automatic and free
        ),
        stop_reason=choice.finish_reason,
    )


CHAT_PATH = "/chat/completions"

_classify = sdk_error_classifier(openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError)


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return (message if isinstance(message, str) else exc.message)[:300]


class OpenAIChatModel(SdkChatModel):
    """A ``ChatModel`` on OpenAI Chat Completions. The SDK does not retry (``max_retries=0``); ``retry`` does.

    ``max_tokens_param`` names the output limit field: ``max_completion_tokens`` for OpenAI itself (newer models
    reject ``max_tokens``), ``max_tokens`` for other servers (which do not all know the newer name).
    ``send_cache_key``: whether ``prompt_cache_key`` is sent (default: to OpenAI itself only).
    """

    provider = "openai"
    _client: openai.AsyncOpenAI

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        *,
        token_factor: float = GPT_TOKEN_FACTOR,
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None,
        send_cache_key: bool | None = None,
        stream: bool = True,
    ) -> None:
        self.model = model
        self.stream = stream
        self.retry = retry or RetryPolicy()
        self.counter = TokenCounter(token_factor)
        official = base_url is None or "api.openai.com" in base_url
        self.max_tokens_param: str = max_tokens_param or ("max_completion_tokens" if official else "max_tokens")
        self.send_cache_key = official if send_cache_key is None else send_cache_key
        if api_key is None and not official:
            api_key = "no-key"  # local servers usually need none, but the SDK insists on one
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    async def complete(
        self,
        system: SystemPrompt,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        *,
        max_output_tokens: int,
        preview: ReplyPreview | None = None,
    ) -> Completion:
        wire_messages = build_messages(system, messages)
        wire_tools = build_tools(tools)
        self._log_request(messages, tools)

        body: dict[str, Any] = {"model": self.model, "messages": wire_messages}
        if wire_tools:
            body["tools"] = wire_tools
        if self.send_cache_key and system.cache_key:
            body["prompt_cache_key"] = system.cache_key
        body[self.max_tokens_param] = max_output_tokens

        async def call(streamed: bool) -> Completion:
            if streamed:
                return await self._streamed(body, PreviewFeed(preview))
            if preview is not None:
                preview.restart()
            # the SDK's raw POST: ``chat.completions.create`` would first walk the whole body against its TypedDict
            # unions on the event loop (about 0.4 ms per queued message), to send the same bytes
            response = await self._client.post(CHAT_PATH, body=body, cast_to=ChatCompletion)
            return checked(parse_response, response, ChatCompletion)

        try:
            completion = await self._call(call, streamed=self.stream and preview is not None, classify=_classify)
        except openai.APIStatusError as exc:
            message = _api_message(exc)
            if is_overflow_error(exc.status_code, exc.code, message):
                self._calibrate_from_overflow(system, messages, tools, message)
                raise ContextOverflowError(f"openai: prompt exceeds the context window: {message}") from exc
            raise RequestRejected(f"openai request rejected ({exc.status_code}): {message}") from exc
        except openai.OpenAIError as exc:
            raise ModelError(f"openai request failed: {type(exc).__name__}") from exc
        self._log_response(completion)
        self._calibrate(system, messages, tools, completion)
        return completion

    async def _streamed(self, body: dict[str, Any], feed: PreviewFeed) -> Completion:
        """One streamed request: tool call fragments of the first choice go to ``feed``; the chunks are accumulated
        into the completion a non-streamed request returns."""
        streamed_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        state = ChunkAccumulator()
        try:
            stream = await self._client.post(
                CHAT_PATH,
                body=streamed_body,
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            async with stream:
                async for chunk in stream:
                    state.add(chunk)
                    for choice in chunk.choices:
                        if choice.index != 0:
                            continue
                        for call in choice.delta.tool_calls or []:
                            if call.function is not None and call.function.name:
                                feed.name(call.index, call.function.name)
                            if call.function is not None and call.function.arguments:
                                feed.arguments(call.index, call.function.arguments)
        except openai.APIStatusError:
            raise
        except (openai.APIConnectionError, openai.APITimeoutError):
            raise
        except openai.APIError as exc:  # an error object inside the stream
            raise StreamInterrupted(f"error in the stream: {str(exc.message)[:200]}") from exc
        except TRANSPORT_ERRORS as exc:
            raise StreamInterrupted(f"stream cut: {type(exc).__name__}") from exc
        if state.finish_reason is None:
            raise StreamInterrupted("the stream ended before a finish_reason")
        return checked(parse_response, state.completion(), ChatCompletion)

    def _refuses_streaming(self, exc: Exception) -> bool:
        return (
            isinstance(exc, openai.APIStatusError)
            and 400 <= exc.status_code < 500
            and exc.status_code not in (408, 429)
            and mentions_streaming(_api_message(exc))
        )
