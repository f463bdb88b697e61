"""Streaming in both ChatModels, through the real SDKs, against the LLM stand-in's SSE streams: the reply preview
grows while the answer arrives, the Completion equals the non-streamed one, and faults mid-stream are retried."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.llm.anthropic import AnthropicChatModel
from bot.llm.openai import OpenAIChatModel
from bot.llm.retry import RetryPolicy
from bot.llm.types import ChatMessage, Completion, ModelError, SystemPrompt, ToolSpec
from tests.standins.llm_server import ScriptedLLMServer, ScriptedReply, StreamPlan

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
SYSTEM = SystemPrompt(static="You are membot.", dynamic="<human>Name: Ann</human>", volatile="[system] Status: x")
SEND = ToolSpec(
    name="send_message",
    description="Send a message to the user.",
    parameters={"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
)
SEARCH = ToolSpec(
    name="archival_memory_search",
    description="Search archival memory.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
TOOLS = [SEARCH, SEND]
HISTORY = [ChatMessage("user", "Tell me something long.")]
LONG = 'Caf\u00e9 "quotes" \\ back\\slash, tabs\t, emoji \U0001f600 and\nnew lines. ' * 12
AnyModel = AnthropicChatModel | OpenAIChatModel


class Recorder:
    """A ReplyPreview that records what it is told."""

    tool = "send_message"
    argument = "message"

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []

    def restart(self) -> None:
        self.events.append(("restart", -1, ""))

    def grow(self, index: int, text: str) -> None:
        self.events.append(("grow", index, text))

    def grown(self, index: int = 0) -> list[str]:
        """The texts reported for call ``index`` since the last restart."""
        texts: list[str] = []
        for kind, i, text in self.events:
            if kind == "restart":
                texts = []
            elif i == index:
                texts.append(text)
        return texts

    @property
    def restarts(self) -> int:
        return sum(kind == "restart" for kind, _, _ in self.events)


def make_model(wire: str, server: ScriptedLLMServer) -> AnyModel:
    if wire == "anthropic":
        return AnthropicChatModel("claude-test", "test-key", server.anthropic_base_url, timeout=5.0, retry=FAST)
    return OpenAIChatModel("gpt-test", "test-key", server.openai_base_url, timeout=5.0, retry=FAST)


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture(params=["anthropic", "openai"])
async def model(request: pytest.FixtureRequest, llm: ScriptedLLMServer) -> AsyncIterator[AnyModel]:
    chat_model = make_model(request.param, llm)
    yield chat_model
    await chat_model.aclose()


async def complete(model: AnyModel, preview: Recorder | None) -> Completion:
    return await model.complete(SYSTEM, HISTORY, TOOLS, max_output_tokens=4096, preview=preview)


def reply(**stream: Any) -> ScriptedReply:
    return ScriptedReply(
        text="I'll answer at length.",
        tool_calls=[("archival_memory_search", {"query": "x"}), ("send_message", {"message": LONG})],
        stream=StreamPlan(**stream),
        input_tokens=1200,
        output_tokens=345,
        cache_read_tokens=1000,
        cache_write_tokens=100,
    )


def same_answer(streamed: Completion, plain: Completion) -> None:
    """Equal but for the tool call ids, which the stand-in makes up anew for every answer."""
    assert streamed.text == plain.text
    assert streamed.usage == plain.usage and streamed.stop_reason == plain.stop_reason
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [(c.name, c.arguments) for c in plain.tool_calls]


async def test_a_streamed_completion_equals_the_plain_one(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(reply(), reply(chunk=5))
    plain = await complete(model, None)
    preview = Recorder()
    streamed = await complete(model, preview)

    assert llm.streamed == 1 and "stream" not in llm.requests[0].raw and llm.requests[1].raw["stream"] is True
    same_answer(streamed, plain)
    assert json.loads(streamed.tool_calls[1].arguments) == {"message": LONG}
    grown = preview.grown(0)
    assert len(grown) > 20 and grown[-1] == LONG  # grew piece by piece, ending with the exact text
    assert all(LONG.startswith(text) for text in grown)
    assert {i for kind, i, _ in preview.events if kind == "grow"} == {0}  # only send_message is previewed
    assert preview.restarts == 1


async def test_openai_asks_for_the_usage_chunk(llm: ScriptedLLMServer) -> None:
    model = make_model("openai", llm)
    try:
        llm.push(reply())
        completion = await complete(model, Recorder())
    finally:
        await model.aclose()
    assert llm.requests[0].raw["stream_options"] == {"include_usage": True}
    assert completion.usage.input_tokens == 1200 and completion.usage.cache_read_tokens == 1000


async def test_no_preview_means_no_stream(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(reply())
    await complete(model, None)
    assert llm.streamed == 0


@pytest.mark.parametrize("fault", [{"cut_after": 9}, {"error_after": 9}, {"cut_after": 0}, {"cut_after": 1}])
async def test_a_stream_broken_midway_is_retried_and_the_preview_starts_over(
    model: AnyModel, llm: ScriptedLLMServer, fault: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    llm.push(reply(**fault), reply())
    preview = Recorder()
    with caplog.at_level(logging.WARNING, logger="bot.llm.retry"):
        completion = await complete(model, preview)

    assert len(llm.requests) == 2 and "retry 1/2" in caplog.text  # "stream interrupted" or "connection error"
    assert json.loads(completion.tool_calls[1].arguments) == {"message": LONG}
    assert preview.restarts == 2 and preview.grown(0)[-1] == LONG


async def test_a_server_error_before_the_stream_is_retried(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(ScriptedReply(status=503), ScriptedReply(status=529 if model.provider == "anthropic" else 500), reply())
    preview = Recorder()
    completion = await complete(model, preview)
    assert len(llm.requests) == 3 and completion.tool_calls[1].name == "send_message"
    assert preview.grown(0)[-1] == LONG


async def test_every_attempt_broken_is_a_model_error(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(reply(cut_after=5), reply(error_after=7), reply(cut_after=12))
    with pytest.raises(ModelError, match="failed after 3 attempts"):
        await complete(model, Recorder())


async def test_a_server_that_cannot_stream_is_asked_without_streaming(
    model: AnyModel, llm: ScriptedLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm.refuse_streaming = True
    llm.push(reply(), reply())
    preview = Recorder()
    with caplog.at_level(logging.WARNING, logger="bot.llm.base"):
        first = await complete(model, preview)
        second = await complete(model, preview)

    assert "refused a streamed request" in caplog.text
    assert [r.raw.get("stream") for r in llm.requests] == [True, None, None]  # asked to stream only once
    assert first.tool_calls[1].name == second.tool_calls[1].name == "send_message"
    assert preview.grown(0) == []  # nothing streamed, nothing previewed


async def test_a_plain_text_answer_streams_without_preview(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(ScriptedReply(text="Just thinking out loud, no reply."))
    preview = Recorder()
    completion = await complete(model, preview)
    assert completion.text == "Just thinking out loud, no reply." and completion.tool_calls == ()
    assert completion.stop_reason in ("end_turn", "stop")
    assert [kind for kind, _, _ in preview.events] == ["restart"]


async def test_two_send_messages_are_numbered_in_order(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(
        ScriptedReply(tool_calls=[("send_message", {"message": "First."}), ("send_message", {"message": "Second."})])
    )
    preview = Recorder()
    await complete(model, preview)
    assert preview.grown(0)[-1] == "First." and preview.grown(1)[-1] == "Second."


async def test_malformed_arguments_stream_as_they_are_sent_at_once(llm: ScriptedLLMServer) -> None:
    """OpenAI-compatible servers may send arguments that are not JSON; they reach the agent as sent, streamed or
    not. (Anthropic's tool input is always a JSON object: its SDK parses the streamed input and a string is not.)"""
    model = make_model("openai", llm)
    broken = '{"message": "half a repl'
    llm.push(ScriptedReply(tool_calls=[("send_message", broken)]), ScriptedReply(tool_calls=[("send_message", broken)]))
    try:
        plain = await complete(model, None)
        preview = Recorder()
        streamed = await complete(model, preview)
    finally:
        await model.aclose()
    same_answer(streamed, plain)
    assert streamed.tool_calls[0].arguments == broken and preview.grown(0)[-1] == "half a repl"


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> Any:
    from openai.types.chat import ChatCompletionChunk

    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice], **extra}
    return ChatCompletionChunk.construct(**body)


def test_chunks_from_quirky_servers_join_like_their_plain_answers() -> None:
    """Servers that repeat the function name in every fragment and send no call ids (vLLM, llama.cpp builds)."""
    from bot.llm.openai import parse_response
    from bot.llm.openai_stream import ChunkAccumulator

    joined = ChunkAccumulator()
    for chunk in [
        _chunk({"role": "assistant", "content": "Thinking. "}),
        _chunk({"content": "Done."}),
        _chunk({"tool_calls": [{"index": 0, "function": {"name": "send_message", "arguments": '{"mess'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"name": "send_message", "arguments": 'age": "hi"}'}}]}),
        _chunk({}, "tool_calls"),
        _chunk({}, None, usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}),
    ]:
        joined.add(chunk)
    completion = parse_response(joined.completion())
    assert completion.text == "Thinking. Done." and completion.stop_reason == "tool_calls"
    [call] = completion.tool_calls
    assert (call.name, call.arguments) == ("send_message", '{"message": "hi"}') and call.id.startswith("call_")
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (7, 3)


def test_a_legacy_function_call_streams_too() -> None:
    from bot.llm.openai import parse_response
    from bot.llm.openai_stream import ChunkAccumulator

    joined = ChunkAccumulator()
    joined.add(_chunk({"role": "assistant", "function_call": {"name": "send_message", "arguments": '{"message":'}}))
    joined.add(_chunk({"function_call": {"arguments": ' "yo"}'}}, "function_call"))
    [call] = parse_response(joined.completion()).tool_calls
    assert (call.name, call.arguments) == ("send_message", '{"message": "yo"}')
