"""Token counting, retry policy, wire translation details and the model factory (no network)."""

from __future__ import annotations

import email.utils
import math
import time

import pytest

from bot.core.ports import ChatModel
from bot.llm import anthropic as anthropic_wire
from bot.llm import openai as openai_wire
from bot.llm.anthropic import AnthropicChatModel
from bot.llm.factory import build_chat_model
from bot.llm.openai import OpenAIChatModel
from bot.llm.pairing import MISSING_RESULT
from bot.llm.retry import RetryPolicy, Transient, call_with_retry, parse_retry_after, transient_status
from bot.llm.tokens import CLAUDE_TOKEN_FACTOR, TokenCounter, raw_message_tokens
from bot.llm.types import ChatMessage, ModelError, SystemPrompt, ToolCall, ToolSpec

TOOL = ToolSpec("send_message", "Send a message.", {"type": "object", "properties": {"message": {"type": "string"}}})


# -- tokens -------------------------------------------------------------------------------------------------------


def test_counts_grow_with_content() -> None:
    counter = TokenCounter()
    system = SystemPrompt("You are membot.", "<human>Ann</human>")
    short = [ChatMessage("user", "hi")]
    longer = [*short, ChatMessage("assistant", "Hello Ann, how was the trip to Lisbon last week?")]
    base = counter.count(system, [], [])
    assert 0 < base < counter.count(system, short, []) < counter.count(system, longer, [])
    assert counter.count(system, longer, [TOOL]) > counter.count(system, longer, [])
    call = ToolCall("toolu_1", "send_message", '{"message": "a fairly long message to the user about cats"}')
    assert counter.count_message(ChatMessage("assistant", "", (call,))) > counter.count_message(
        ChatMessage("assistant")
    )
    assert counter.count_text("hello world") == 2
    assert counter.count_text("<|endoftext|>") > 1  # special markers in user text are plain text


def test_factor_is_applied() -> None:
    system, messages = SystemPrompt("static " * 200, "dynamic " * 50), [ChatMessage("user", "word " * 300)]
    exact = TokenCounter(1.0).count(system, messages, [TOOL])
    assert TokenCounter(CLAUDE_TOKEN_FACTOR).count(system, messages, [TOOL]) == math.ceil(exact * CLAUDE_TOKEN_FACTOR)
    anthropic_model = AnthropicChatModel("claude-test", "k", "http://127.0.0.1:9")
    openai_model = OpenAIChatModel("gpt-test", "k", "http://127.0.0.1:9/v1")
    assert openai_model.count_tokens(system, messages, [TOOL]) == exact
    assert anthropic_model.count_tokens(system, messages, [TOOL]) > exact
    with pytest.raises(ValueError):
        TokenCounter(0)


def test_message_counts_are_cached_by_value() -> None:
    message = ChatMessage("user", "a message that will be loaded again from Redis " * 20)
    raw_message_tokens(message)
    hits = raw_message_tokens.cache_info().hits
    reloaded = ChatMessage.from_json(message.to_json())
    assert reloaded == message and reloaded is not message
    raw_message_tokens(reloaded)
    assert raw_message_tokens.cache_info().hits == hits + 1


def test_counting_is_cheap() -> None:
    counter = TokenCounter()
    system = SystemPrompt("rules " * 2000, "core " * 500)
    messages = [ChatMessage("user" if i % 2 else "assistant", f"message {i} " * 40) for i in range(200)]
    counter.count(system, messages, [TOOL] * 12)
    started = time.perf_counter()
    for _ in range(50):
        counter.count(system, messages, [TOOL] * 12)
    assert (time.perf_counter() - started) / 50 < 0.01


# -- retry --------------------------------------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after({"retry-after": later}) or 0) <= 31


def test_transient_statuses() -> None:
    assert transient_status(429) is not None and transient_status(529) is not None
    assert transient_status(503) is not None and transient_status(408) is not None
    assert transient_status(400) is None and transient_status(401) is None and transient_status(404) is None
    assert transient_status(429, {"retry-after": "7"}) == Transient("rate limited (429)", 7.0)


def test_delays_back_off_with_jitter_and_caps() -> None:
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=5.0, jitter=0.5)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delay = policy.delay(retry)
        assert ceiling * 0.5 <= delay <= ceiling
    assert policy.delay(1, retry_after=2.0) == 2.0
    assert policy.delay(1, retry_after=600.0) == 5.0
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_call_with_retry() -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)
    outcomes: list[Exception | str] = [TimeoutError(), TimeoutError(), "done"]

    async def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def classify(exc: Exception) -> Transient | None:
        return Transient("timeout") if isinstance(exc, TimeoutError) else None

    assert await call_with_retry(flaky, policy=policy, classify=classify) == "done"

    outcomes[:] = [TimeoutError()] * 3
    with pytest.raises(ModelError, match="after 3 attempts: timeout") as info:
        await call_with_retry(flaky, policy=policy, classify=classify)
    assert isinstance(info.value.__cause__, TimeoutError)

    outcomes[:] = [KeyError("not transient"), "never"]
    with pytest.raises(KeyError):
        await call_with_retry(flaky, policy=policy, classify=classify)
    assert outcomes == ["never"]


# -- wire translation ---------------------------------------------------------------------------------------------


def test_anthropic_merges_roles_and_orders_tool_results_first() -> None:
    call_a = ToolCall("toolu_a", "archival_memory_search", '{"query": "x"}')
    call_b = ToolCall("toolu_b", "send_message", "")
    wire = anthropic_wire.build_messages(
        [
            ChatMessage("user", "one"),
            ChatMessage("user", "two"),
            ChatMessage("assistant", "", (call_a, call_b)),
            ChatMessage("tool", "result a", tool_call_id="toolu_a"),
            ChatMessage("user", "[system alert] memory pressure"),
            ChatMessage("tool", "result b", tool_call_id="toolu_b"),
        ],
        cache_conversation=False,
    )
    assert [m["role"] for m in wire] == ["user", "assistant", "user"]
    assert [b["text"] for b in wire[0]["content"]] == ["one", "two"]
    assert wire[1]["content"] == [
        {"type": "tool_use", "id": "toolu_a", "name": "archival_memory_search", "input": {"query": "x"}},
        {"type": "tool_use", "id": "toolu_b", "name": "send_message", "input": {}},
    ]
    last = wire[2]["content"]
    # the alert closed call b with a placeholder; the late result of b became text
    assert [b["type"] for b in last] == ["tool_result", "tool_result", "text", "text"]
    assert last[1] == {
        "type": "tool_result",
        "tool_use_id": "toolu_b",
        "content": MISSING_RESULT,
        "is_error": True,
    }
    assert "result b" in last[3]["text"]


def test_anthropic_tool_input_never_crashes() -> None:
    for raw, expected in [
        ("[1, 2]", {"_raw": "[1, 2]"}),
        ("{oops", {"_raw": "{oops"}),
        ("  ", {}),
        ('{"a":1}', {"a": 1}),
    ]:
        wire = anthropic_wire.build_messages(
            [ChatMessage("user", "q"), ChatMessage("assistant", "", (ToolCall("t1", "f", raw),))],
            cache_conversation=False,
        )
        assert wire[1]["content"][0]["input"] == expected


def test_anthropic_ids_from_other_providers_are_made_valid() -> None:
    call = ToolCall("chatcmpl-tool.7:1", "send_message", "{}")
    history = [
        ChatMessage("user", "q"),
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", "ok", tool_call_id=call.id),
    ]
    wire = anthropic_wire.build_messages(history, cache_conversation=False)
    assert wire[1]["content"][0]["id"] == wire[2]["content"][0]["tool_use_id"] == "chatcmpl-tool_7_1"


def test_overflow_classification() -> None:
    assert anthropic_wire.is_overflow_message(400, "prompt is too long: 250000 tokens > 200000 maximum")
    assert not anthropic_wire.is_overflow_message(400, "messages: roles must alternate")
    assert not anthropic_wire.is_overflow_message(429, "prompt is too long")
    assert openai_wire.is_overflow_error(400, "context_length_exceeded", "whatever")
    assert openai_wire.is_overflow_error(400, None, "the request exceeds the available context size")
    assert not openai_wire.is_overflow_error(400, "invalid_value", "Invalid value for 'tools'")


def test_openai_keeps_valid_arguments_byte_for_byte() -> None:
    call = ToolCall("call_1", "send_message", '{ "message" :  "spaced" }')
    wire = openai_wire.build_messages(
        SystemPrompt("S", "D"),
        [
            ChatMessage("user", "q"),
            ChatMessage("assistant", "", (call,)),
            ChatMessage("tool", "ok", tool_call_id="call_1"),
        ],
    )
    assert wire[0] == {"role": "system", "content": "S\n\nD"}
    assert wire[2]["content"] is None
    assert wire[2]["tool_calls"][0]["function"]["arguments"] == call.arguments
    assert wire[3] == {"role": "tool", "tool_call_id": "call_1", "content": "ok"}


def test_openai_body_is_what_the_sdk_would_send() -> None:
    """The chat body is posted raw (``chat.completions.create`` would first walk it against the SDK's types, at
    about 0.4 ms a message): that walk must have nothing to change in it."""
    from openai._utils import maybe_transform
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

    from bot.core.tools import tool_specs

    call = ToolCall("call_1", "core_memory_append", '{"label": "human", "content": "likes tea"}')
    messages = openai_wire.build_messages(
        SystemPrompt("S", "D"),
        [
            ChatMessage("user", "q"),
            ChatMessage("assistant", "thinking", (call,)),
            ChatMessage("tool", "ok", tool_call_id="call_1", name="core_memory_append"),
            ChatMessage("assistant", "plain"),
            ChatMessage("user", "again"),
        ],
    )
    body = {"model": "m", "messages": messages, "tools": openai_wire.build_tools(tool_specs()), "max_tokens": 64}
    assert maybe_transform(body, CompletionCreateParamsNonStreaming) == body


# -- factory ------------------------------------------------------------------------------------------------------


async def test_factory() -> None:
    anthropic_model = build_chat_model("anthropic", "claude-test", api_key="k", base_url=None)
    openai_model = build_chat_model("OpenAI", "gpt-test", api_key=None, base_url="http://127.0.0.1:9/v1", timeout=5)
    try:
        assert isinstance(anthropic_model, AnthropicChatModel) and anthropic_model.provider == "anthropic"
        assert isinstance(openai_model, OpenAIChatModel) and openai_model.model == "gpt-test"
        models: list[ChatModel] = [anthropic_model, openai_model]
        assert len(models) == 2
    finally:
        await anthropic_model.aclose()
        await openai_model.aclose()
    with pytest.raises(ValueError, match="MEMBOT_LLM_PROVIDER"):
        build_chat_model("gemini", "x", api_key="k", base_url=None)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build_chat_model("openai", "gpt-test", api_key=None, base_url=None)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        build_chat_model("anthropic", "claude-test", api_key="", base_url=None)
