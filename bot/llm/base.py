"""What both SDK-backed models share: token counting and its calibration, closing, response logging, error
classification."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import httpx2

from bot.llm.calibration import reported_prompt_tokens
from bot.llm.retry import RetryPolicy, Transient, call_with_retry, transient_status
from bot.llm.streaming import StreamInterrupted
from bot.llm.tokens import TokenCounter
from bot.llm.types import ChatMessage, Completion, SystemPrompt, ToolSpec

log = logging.getLogger(__name__)


# what a connection lost while a stream is read raises (the SDKs wrap only errors of sending the request)
TRANSPORT_ERRORS = (httpx2.TransportError, httpx2.StreamError)


class MalformedResponse(Exception):
    """A 200 answer that is not the expected JSON (HTML, an empty or truncated body, missing fields)."""


def checked(parse: Callable[[Any], Completion], response: object, expected: type) -> Completion:
    """``parse(response)``, or MalformedResponse when the SDK handed back something else or parsing fails.

    With non-strict validation the SDKs return the raw text for a non-JSON body and a half-built object for JSON
    with missing fields; both must become a retryable failure, never an AttributeError in the turn.
    """
    if not isinstance(response, expected):
        raise MalformedResponse(f"expected a {expected.__name__}, got {type(response).__name__}")
    try:
        return parse(response)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise MalformedResponse(f"unreadable {expected.__name__}: {type(exc).__name__}") from exc


class _ClosableClient(Protocol):
    async def close(self) -> None: ...


class SdkChatModel:
    """Base of the Anthropic and OpenAI models; subclasses set ``provider``, ``_client`` and implement complete."""

    provider: str
    model: str
    counter: TokenCounter
    retry: RetryPolicy
    stream: bool  # stream requests that have a ReplyPreview (turned off when the server refuses streaming)
    _client: _ClosableClient

    async def _call(
        self,
        call: Callable[[bool], Awaitable[Completion]],
        *,
        streamed: bool,
        classify: Callable[[Exception], Transient | None],
    ) -> Completion:
        """``call(streamed)`` with retries; a server that refuses streaming is asked again without it, and is not
        asked to stream any more."""
        what = f"{self.provider} request"
        try:
            return await call_with_retry(lambda: call(streamed), policy=self.retry, classify=classify, what=what)
        except Exception as exc:
            if not streamed or not self._refuses_streaming(exc):
                raise
        log.warning("%s: the server refused a streamed request; streaming is off from now on", self.provider)
        self.stream = False
        return await call_with_retry(lambda: call(False), policy=self.retry, classify=classify, what=what)

    def _refuses_streaming(self, exc: Exception) -> bool:
        """Whether ``exc`` says the server cannot stream (each provider knows its error type)."""
        return False

    def count_tokens(self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> int:
        return self.counter.count(system, messages, tools)

    def _calibrate(
        self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], completion: Completion
    ) -> None:
        """Compare the estimate of the prompt just sent with the input tokens the provider reported."""
        self.counter.observe(system, messages, tools, completion.usage.input_tokens)

    def _calibrate_from_overflow(
        self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], message: str
    ) -> None:
        """An overflow error that names the prompt's size calibrates too (before the flush and retry it causes)."""
        reported = reported_prompt_tokens(message)
        if reported is not None:
            self.counter.observe(system, messages, tools, reported)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def __aenter__(self) -> SdkChatModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _log_request(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> None:
        log.debug("%s request: model=%s messages=%d tools=%d", self.provider, self.model, len(messages), len(tools))

    def _log_response(self, completion: Completion) -> None:
        log.debug(
            "%s response: stop=%s input=%d cached=%d output=%d",
            self.provider,
            completion.stop_reason,
            completion.usage.input_tokens,
            completion.usage.cache_read_tokens,
            completion.usage.output_tokens,
        )


def sdk_error_classifier(
    timeout_error: type[Exception], connection_error: type[Exception], status_error: type[Any]
) -> Callable[[Exception], Transient | None]:
    """Which SDK exceptions are worth retrying: timeouts, connection errors, 408/429/5xx statuses, and 200 answers
    that are not JSON or not the expected JSON (a ``ValueError`` from the SDK's JSON decoding, MalformedResponse)."""

    def classify(exc: Exception) -> Transient | None:
        if isinstance(exc, StreamInterrupted):
            return Transient("stream interrupted")
        if isinstance(exc, MalformedResponse | ValueError):
            return Transient("malformed response")
        if isinstance(exc, timeout_error):
            return Transient("timeout")
        if isinstance(exc, connection_error):
            return Transient("connection error")
        if isinstance(exc, status_error):
            return transient_status(exc.status_code, exc.response.headers)
        return None

    return classify
