"""Both ChatModel implementations, through the real SDKs, against the scripted LLM stand-in."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.llm.anthropic import AnthropicChatModel
from bot.llm.openai import OpenAIChatModel
from bot.llm.retry import RetryPolicy
from bot.llm.types import ChatMessage, ContextOverflowError, ModelError, SystemPrompt, ToolCall, ToolSpec
from tests.standins.llm_server import ScriptedLLMServer, ScriptedReply

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
SYSTEM = SystemPrompt(static="You are membot. STATIC RULES.", dynamic="<human>Name: Ann</human>")
SEARCH = ToolSpec(
    name="archival_memory_search",
    description="Search archival memory.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}, "page": {"type": "integer"}},
        "required": ["query"],
    },
)
SEND = ToolSpec(
    name="send_message",
    description="Send a message to the user.",
    parameters={"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
)
TOOLS = [SEARCH, SEND]
AnyModel = AnthropicChatModel | OpenAIChatModel


def make_model(wire: str, server: ScriptedLLMServer, *, timeout: float = 5.0, retry: RetryPolicy = FAST) -> AnyModel:
    if wire == "anthropic":
        return AnthropicChatModel("claude-test", "test-key", server.anthropic_base_url, timeout=timeout, retry=retry)
    return OpenAIChatModel("gpt-test", "test-key", server.openai_base_url, timeout=timeout, retry=retry)


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture(params=["anthropic", "openai"])
async def model(request: pytest.FixtureRequest, llm: ScriptedLLMServer) -> AsyncIterator[AnyModel]:
    chat_model = make_model(request.param, llm)
    yield chat_model
    await chat_model.aclose()


async def complete(model: AnyModel, messages: list[ChatMessage], tools: list[ToolSpec] = TOOLS) -> Any:
    return await model.complete(SYSTEM, messages, tools, max_output_tokens=256)


async def test_full_tool_calling_turn(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(
        ScriptedReply(
            text="Let me look that up.", tool_calls=[("archival_memory_search", {"query": "cats", "page": 0})]
        ),
        ScriptedReply(text="Ann has two cats."),
    )
    history = [ChatMessage("user", "What pets do I have?")]
    first = await complete(model, history)

    assert first.text == "Let me look that up."
    assert first.stop_reason in ("tool_use", "tool_calls")
    [call] = first.tool_calls
    assert call.name == "archival_memory_search" and call.id
    assert json.loads(call.arguments) == {"query": "cats", "page": 0}
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0

    history += [
        ChatMessage("assistant", first.text, tool_calls=first.tool_calls),
        ChatMessage("tool", "1. Ann has two cats, Miso and Tofu.", tool_call_id=call.id, name=call.name),
    ]
    second = await complete(model, history)
    assert second.text == "Ann has two cats." and second.tool_calls == ()
    assert second.stop_reason in ("end_turn", "stop")

    seen = llm.requests[1]
    assert seen.wire == model.provider and seen.model == model.model
    assert seen.system.startswith(SYSTEM.static) and SYSTEM.dynamic in seen.system
    assert seen.tools == ["archival_memory_search", "send_message"]
    assert seen.max_tokens == 256
    assert [m["role"] for m in seen.messages] == ["user", "assistant", "tool"]
    assert seen.messages[0]["content"] == "What pets do I have?"
    assert seen.messages[1]["content"] == "Let me look that up."
    assert seen.messages[1]["tool_calls"] == [{"id": call.id, "name": call.name, "arguments": call.arguments}]
    assert seen.messages[2]["tool_call_id"] == call.id
    assert seen.messages[2]["content"] == "1. Ann has two cats, Miso and Tofu."


def _breakpoints(raw: dict[str, Any]) -> list[str]:
    """Where the request's cache_control markers are, in cache order (tools, system, messages)."""
    found = [f"tool {t['name']}" for t in raw["tools"] if "cache_control" in t]
    found += [f"system {i}" for i, b in enumerate(raw["system"]) if "cache_control" in b]
    for i, message in enumerate(raw["messages"]):
        found += [f"message {i} block {j}" for j, b in enumerate(message["content"]) if "cache_control" in b]
    return found


STATUS = "[system] Status: now 2026-01-01 10:00 UTC. 3 messages in recall memory."
CALL = ToolCall("toolu_1", "archival_memory_search", '{"query": "cats"}')
CONVERSATION = [
    ChatMessage("user", "do I have cats?"),
    ChatMessage("assistant", "Searching.", (CALL,)),
    ChatMessage("tool", "1. Ann has two cats.", tool_call_id=CALL.id, name=CALL.name),
]


async def test_anthropic_wire_shape_and_prompt_caching(llm: ScriptedLLMServer) -> None:
    model = make_model("anthropic", llm)
    try:
        await complete(model, [ChatMessage("user", "hi")])
        system = SystemPrompt(SYSTEM.static, SYSTEM.dynamic, volatile=STATUS, cache_key="membot-abc")
        await model.complete(system, CONVERSATION, TOOLS, max_output_tokens=256)
    finally:
        await model.aclose()
    raw = llm.requests[0].raw
    static, dynamic = raw["system"]
    assert static == {"type": "text", "text": SYSTEM.static, "cache_control": {"type": "ephemeral"}}
    assert dynamic == {"type": "text", "text": SYSTEM.dynamic, "cache_control": {"type": "ephemeral"}}
    assert raw["tools"][0] == {
        "name": SEARCH.name,
        "description": SEARCH.description,
        "input_schema": SEARCH.parameters,
    }
    assert _breakpoints(raw) == ["system 0", "system 1", "message 0 block 0"]  # static covers the tools
    assert raw["max_tokens"] == 256 and raw["model"] == "claude-test"

    raw = llm.requests[1].raw
    # the API's maximum of 4: instructions, core memory, and the last two messages before the status note
    assert _breakpoints(raw) == ["system 0", "system 1", "message 1 block 1", "message 2 block 0"]
    assert raw["messages"][-1]["content"][-1] == {"type": "text", "text": STATUS}, "the status note comes last"
    assert raw["messages"][-1]["content"][0]["type"] == "tool_result"
    assert "membot-abc" not in json.dumps(raw), "the cache key is OpenAI's"
    assert llm.requests[1].status == STATUS and llm.requests[1].messages[-1]["role"] == "tool"


async def test_openai_wire_shape(llm: ScriptedLLMServer) -> None:
    model = make_model("openai", llm)
    keyed = OpenAIChatModel("gpt-test", "test-key", llm.openai_base_url, send_cache_key=True)
    system = SystemPrompt(SYSTEM.static, SYSTEM.dynamic, volatile=STATUS, cache_key="membot-abc")
    try:
        await complete(model, [ChatMessage("user", "hi")])
        await model.complete(system, [ChatMessage("user", "hi")], TOOLS, max_output_tokens=256)
        await keyed.complete(system, CONVERSATION, TOOLS, max_output_tokens=256)
    finally:
        await model.aclose()
        await keyed.aclose()
    raw = llm.requests[0].raw
    assert raw["messages"][0] == {"role": "system", "content": SYSTEM.text()}
    assert raw["messages"][1] == {"role": "user", "content": "hi"}
    assert raw["tools"][0] == {
        "type": "function",
        "function": {"name": SEARCH.name, "description": SEARCH.description, "parameters": SEARCH.parameters},
    }
    assert raw["max_tokens"] == 256  # a custom base_url gets the widely supported name
    official = OpenAIChatModel("gpt-test", "test-key")
    assert official.max_tokens_param == "max_completion_tokens" and official.send_cache_key
    await official.aclose()
    # the status note ends the last user message, or follows a function result as a user message of its own
    raw = llm.requests[1].raw
    assert raw["messages"][-1] == {"role": "user", "content": f"hi\n\n{STATUS}"}
    assert "prompt_cache_key" not in raw, "servers other than OpenAI may reject unknown fields"
    assert llm.requests[1].messages[-1]["content"] == "hi" and llm.requests[1].status == STATUS
    raw = llm.requests[2].raw
    assert raw["messages"][-2]["role"] == "tool" and raw["messages"][-1] == {"role": "user", "content": STATUS}
    assert raw["prompt_cache_key"] == "membot-abc"


async def test_malformed_arguments_pass_through_and_go_back_safely(model: AnyModel, llm: ScriptedLLMServer) -> None:
    broken = '{"label": "human", "content": "likes tea'
    llm.push(ScriptedReply(tool_calls=[("core_memory_append", broken)]), ScriptedReply(text="recovered"))
    history = [ChatMessage("user", "remember I like tea")]
    first = await complete(model, history)
    [call] = first.tool_calls
    assert call.arguments == broken

    history += [
        ChatMessage("assistant", "", tool_calls=first.tool_calls),
        ChatMessage("tool", "error: arguments were not valid JSON", tool_call_id=call.id, name=call.name),
    ]
    second = await complete(model, history)
    assert second.text == "recovered"
    sent = llm.requests[1].messages[1]["tool_calls"][0]["arguments"]
    assert json.loads(sent) == {"_raw": broken}  # valid JSON on the wire, the raw text kept inside


async def test_rate_limit_is_retried(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(ScriptedReply(status=429, error_message="slow down"), ScriptedReply(text="fine"))
    completion = await complete(model, [ChatMessage("user", "hi")])
    assert completion.text == "fine"
    assert len(llm.requests) == 2


async def test_retry_after_is_honoured_but_capped(llm: ScriptedLLMServer) -> None:
    model = make_model("anthropic", llm, retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.1))
    llm.push(ScriptedReply(status=529, headers={"retry-after": "120"}), ScriptedReply(text="back"))
    started = time.monotonic()
    try:
        assert (await complete(model, [ChatMessage("user", "hi")])).text == "back"
    finally:
        await model.aclose()
    assert time.monotonic() - started < 5


async def test_server_errors_exhaust_retries(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(*[ScriptedReply(status=500, error_message="boom")] * 3)
    with pytest.raises(ModelError) as info:
        await complete(model, [ChatMessage("user", "hi")])
    assert not isinstance(info.value, ContextOverflowError)
    assert "3 attempts" in str(info.value) and len(str(info.value)) < 200
    assert len(llm.requests) == 3


async def test_slow_reply_times_out_then_fails(llm: ScriptedLLMServer) -> None:
    for wire in ("anthropic", "openai"):
        llm.requests.clear()
        model = make_model(wire, llm, timeout=0.2, retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05))
        llm.push(ScriptedReply(text="late", delay=3.0), ScriptedReply(text="late", delay=3.0))
        started = time.monotonic()
        try:
            with pytest.raises(ModelError, match="timeout"):
                await complete(model, [ChatMessage("user", "hi")])
        finally:
            await model.aclose()
        assert time.monotonic() - started < 2.5
        assert len(llm.requests) == 2


async def test_bad_request_is_not_retried(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(ScriptedReply(status=400, error_message="tools.0.name: invalid"))
    with pytest.raises(ModelError) as info:
        await complete(model, [ChatMessage("user", "hi")])
    assert not isinstance(info.value, ContextOverflowError)
    assert "400" in str(info.value)
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    ("wire", "reply"),
    [
        ("anthropic", ScriptedReply(status=400, error_message="prompt is too long: 250000 tokens > 200000 maximum")),
        (
            "anthropic",
            ScriptedReply(
                status=400,
                error_message="input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000",
            ),
        ),
        (
            "openai",
            ScriptedReply(
                status=400,
                error_code="context_length_exceeded",
                error_message="Your input exceeds the context window of this model.",
            ),
        ),
        (
            "openai",  # vLLM's wording, without a code
            ScriptedReply(status=400, error_message="This model's maximum context length is 4096 tokens."),
        ),
    ],
)
async def test_context_overflow(wire: str, reply: ScriptedReply, llm: ScriptedLLMServer) -> None:
    model = make_model(wire, llm)
    llm.push(reply)
    try:
        with pytest.raises(ContextOverflowError):
            await complete(model, [ChatMessage("user", "hi")])
    finally:
        await model.aclose()
    assert len(llm.requests) == 1


async def test_handler_exception_becomes_server_error(model: AnyModel, llm: ScriptedLLMServer) -> None:
    def broken(_request: Any) -> ScriptedReply:
        raise RuntimeError("scenario bug")

    llm.set_handler(broken)
    with pytest.raises(ModelError):
        await complete(model, [ChatMessage("user", "hi")])
    assert len(llm.handler_errors) == 3 and "scenario bug" in llm.handler_errors[0]


async def test_default_reply_and_handler(model: AnyModel, llm: ScriptedLLMServer) -> None:
    assert (await complete(model, [ChatMessage("user", "hi")])).text == "ok"
    llm.set_handler(lambda req: ScriptedReply(text=f"you said {req.messages[-1]['content']}"))
    assert (await complete(model, [ChatMessage("user", "hello")])).text == "you said hello"


async def test_usage_with_cache_reads(model: AnyModel, llm: ScriptedLLMServer) -> None:
    llm.push(ScriptedReply(text="x", input_tokens=50, output_tokens=7, cache_read_tokens=1000))
    usage = (await complete(model, [ChatMessage("user", "hi")])).usage
    assert usage.cache_read_tokens == 1000 and usage.output_tokens == 7
    # neutral input_tokens is the whole prompt: anthropic reports cache reads apart, openai includes them
    assert usage.input_tokens == (1050 if model.provider == "anthropic" else 50)


async def test_openai_compatible_server_quirks(llm: ScriptedLLMServer) -> None:
    """Tool calls without ids or type, content null, no usage (as some local servers answer)."""
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "local",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"function": {"name": "send_message", "arguments": '{"message": "a"}'}},
                        {"function": {"name": "send_message", "arguments": '{"message": "b"}'}},
                    ],
                },
            }
        ],
    }
    llm.push(ScriptedReply(raw_body=body))
    model = make_model("openai", llm)
    try:
        completion = await complete(model, [ChatMessage("user", "hi")])
    finally:
        await model.aclose()
    assert completion.text == ""
    ids = [c.id for c in completion.tool_calls]
    assert all(ids) and len(set(ids)) == 2
    assert [json.loads(c.arguments)["message"] for c in completion.tool_calls] == ["a", "b"]
    assert completion.usage.input_tokens == 0


async def test_damaged_history_is_repaired(model: AnyModel, llm: ScriptedLLMServer) -> None:
    """Starts with the assistant, a call without a result, a result without a call: still a valid request."""
    history = [
        ChatMessage("assistant", "(thinking)", tool_calls=(ToolCall("call_1", "send_message", '{"message":"x"}'),)),
        ChatMessage("user", "are you there?"),
        ChatMessage("user", "hello?"),
        ChatMessage("tool", "stale result", tool_call_id="call_gone", name="archival_memory_search"),
        ChatMessage("assistant", "   "),
    ]
    assert (await complete(model, history)).text == "ok"
    seen = llm.requests[0]
    tool_results = [m for m in seen.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_results] == ["call_1"]
    assert any("stale result" in m["content"] for m in seen.messages if m["role"] == "user")
    if model.provider == "anthropic":
        roles = [m["role"] for m in seen.raw["messages"]]
        assert roles[0] == "user" and roles[-1] == "user"
        assert all(a != b for a, b in itertools.pairwise(roles))


def test_standin_serves_synchronous_callers() -> None:
    import urllib.request

    with ScriptedLLMServer() as server:
        server.push(ScriptedReply(tool_calls=[("send_message", {"message": "hi"})]))
        body = json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}).encode()
        req = urllib.request.Request(
            f"{server.openai_base_url}/chat/completions", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as response:
            answer = json.load(response)
    call = answer["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"message": "hi"}
    assert answer["choices"][0]["finish_reason"] == "tool_calls"


async def test_standin_embeddings(llm: ScriptedLLMServer) -> None:
    import openai

    client = openai.AsyncOpenAI(api_key="test-key", base_url=llm.openai_base_url, max_retries=0)
    try:
        first = await client.embeddings.create(model="text-embedding-3-small", input=["red apples", "green pears"])
        again = await client.embeddings.create(model="text-embedding-3-small", input="red apples", dimensions=64)
        floats = await client.embeddings.create(
            model="text-embedding-3-small", input="red apples", encoding_format="float"
        )
        unknown = await client.embeddings.create(model="m", input="red apples")
    finally:
        await client.close()
    assert [len(d.embedding) for d in first.data] == [1536, 1536]  # the model's own size, as the API answers
    assert len(again.data[0].embedding) == 64
    assert len(unknown.data[0].embedding) == 384  # a model the stand-in does not know
    assert first.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert first.data[0].embedding != first.data[1].embedding
    assert sum(v * v for v in first.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
