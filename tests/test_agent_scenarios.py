"""End-to-end turns through the real composition root: real Redis, embedded Qdrant, real SDKs, scripted model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from adapters.console import console_agent, console_message
from bot.app import open_app
from bot.runtime.runtime import EMPTY_NOTICE, MODEL_DOWN_NOTICE
from tests.scenario import RecordingSink, settings_for
from tests.standins.llm_server import ScriptedLLMServer, ScriptedReply


@pytest.fixture(params=["anthropic", "openai"])
def wire(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_full_tool_calling_turn_on_both_wires(
    llm: ScriptedLLMServer, wire: str, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(llm, wire, key_prefix, data_dir)
    async with open_app(settings) as app:
        assert app.runtime is not None
        sink = RecordingSink()
        await app.runtime.handle(console_message("zed", "my name is Zed"), sink)
        assert sink.messages == ["Got it, I'll remember that."]
        await app.runtime.handle(console_message("zed", "what is my name?"), sink)
        assert sink.messages[-1] == "Your name is Zed."
        blocks = {b.label: b.value for b in await app.stores.core.blocks(console_agent("zed"))}
        assert "Name: Zed" in blocks["human"]
    assert {r.wire for r in llm.requests} == {wire}
    first = llm.requests[0]
    assert "You are membot" in first.system and "# Core memory" in first.system
    assert set(first.tools) >= {"send_message", "core_memory_append", "conversation_search", "archival_memory_insert"}
    tool_result = llm.requests[1].messages[-1]
    assert tool_result["role"] == "tool" and '"status": "OK"' in tool_result["content"]


async def test_inner_monologue_is_never_shown_and_unsent_reply_gets_one_reminder(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(llm, "openai", key_prefix, data_dir)
    async with open_app(settings) as app:
        assert app.runtime is not None
        sink = RecordingSink()
        await app.runtime.handle(console_message("mo", "my name is Mo"), sink)
        assert all("Saving their name" not in text for text in sink.messages)
        await app.runtime.handle(console_message("mo", "think only"), sink)
    reminder = llm.requests[-1].messages[-1]
    assert "not delivered" in reminder["content"]
    assert sink.messages[-1] == "(noted the system event)"
    assert all("answer in my head" not in text for text in sink.messages)


async def test_malformed_calls_are_answered_with_errors_and_the_turn_goes_on(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(llm, "openai", key_prefix, data_dir, MEMBOT_CORE_BLOCK_LIMIT=200, MEMBOT_MAX_STEPS=10)
    bad_calls: list[tuple[str, dict[str, object] | str]] = [
        ("delete_everything", {"request_heartbeat": True}),
        ("core_memory_append", '{"label": "human", "content": "unterminated'),
        ("core_memory_append", {"label": "human", "content": 42}),
        ("core_memory_append", {"label": "diary", "content": "x"}),
        ("core_memory_replace", {"label": "human", "old_content": "not in the block", "new_content": "y"}),
        ("core_memory_append", {"label": "human", "content": "z" * 500}),
    ]
    for name, args in bad_calls:
        llm.push(ScriptedReply(tool_calls=[(name, args)]))
    llm.push(ScriptedReply(tool_calls=[("send_message", {"message": "Recovered."})]))
    async with open_app(settings) as app:
        assert app.runtime is not None
        sink = RecordingSink()
        report = await app.runtime.handle(console_message("eve", "hello"), sink)
        human = {b.label: b.value for b in await app.stores.core.blocks(console_agent("eve"))}["human"]
    assert sink.messages == ["Recovered."]
    assert report is not None and report.failed_calls == 6 and report.steps == 7
    results = [json.loads(r.messages[-1]["content"]) for r in llm.requests[1:7]]
    assert all(r["status"] == "Failed" for r in results)
    assert "unknown function" in results[0]["message"]
    assert "not valid JSON" in results[1]["message"]
    assert "content" in results[2]["message"] and "string" in results[2]["message"]
    assert "diary" in results[3]["message"] and "human" in results[3]["message"]
    assert "not in the block" in results[4]["message"] or "not found" in results[4]["message"]
    assert "200" in results[5]["message"] and "archival" in results[5]["message"]
    assert "z" * 50 not in human


async def test_max_steps_ends_a_runaway_turn(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, MEMBOT_MAX_STEPS=3)
    llm.set_handler(
        lambda _: ScriptedReply(tool_calls=[("archival_memory_search", {"query": "x", "request_heartbeat": True})])
    )
    async with open_app(settings) as app:
        assert app.runtime is not None
        report = await app.runtime.handle(console_message("rex", "loop please"), RecordingSink())
    assert report is not None and report.hit_max_steps and report.steps == 3
    assert len(llm.requests) == 3


async def test_bad_input_gets_a_clear_notice(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    settings = settings_for(llm, "openai", key_prefix, data_dir, MEMBOT_MAX_MESSAGE_CHARS=1000)
    async with open_app(settings) as app:
        assert app.runtime is not None
        sink = RecordingSink()
        assert await app.runtime.handle(console_message("amy", "   "), sink) is None
        assert sink.notices == [EMPTY_NOTICE] and not llm.requests
        huge = "word " * 20_000  # 100 KB
        await app.runtime.handle(console_message("amy", huge), sink)
        assert "100,000 characters" in sink.notices[-1] or "characters long" in sink.notices[-1]
        sent = llm.requests[0].messages[-1]["content"]
        assert len(sent) < 1500 and "cut from" in sent
        page = await app.stores.recall.search_date(
            console_agent("amy"),
            console_message("amy", "x").timestamp.replace(year=2000),
            console_message("amy", "x").timestamp.replace(year=2100),
            0,
            console_message("amy", "x").scope,
        )
        assert any(len(hit.text) >= 99_000 for hit in page.hits), "the whole message is kept in recall"


async def test_model_down_gets_an_apology_and_keeps_the_message(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(llm, "openai", key_prefix, data_dir)
    llm.set_handler(lambda _: ScriptedReply(status=503, error_type="server_error", error_message="down"))
    async with open_app(settings) as app:
        assert app.runtime is not None
        sink = RecordingSink()
        assert await app.runtime.handle(console_message("ian", "are you there?"), sink) is None
        assert sink.notices == [MODEL_DOWN_NOTICE]
        queue = await app.stores.working.messages(console_agent("ian"))
        assert queue and "are you there?" in queue[-1].content
        assert await app.stores.recall.count(console_agent("ian")) == 1


async def test_two_agents_never_see_each_others_memory(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    settings = settings_for(llm, "openai", key_prefix, data_dir)
    async with open_app(settings) as app:
        assert app.runtime is not None
        alice, bob = RecordingSink(), RecordingSink()
        await app.runtime.handle(console_message("alice", "my name is Alice"), alice)
        await app.runtime.handle(console_message("alice", "remember: the vault code is 7431 marmalade"), alice)
        await app.runtime.handle(console_message("bob", "what is my name?"), bob)
        await app.runtime.handle(console_message("bob", "search: vault code marmalade"), bob)
        await app.runtime.handle(console_message("bob", "recall: vault code marmalade"), bob)
    assert bob.messages[0] == "I don't know your name yet."
    assert all("7431" not in text and "Alice" not in text for text in bob.messages[1:])
    bob_requests = [r for r in llm.requests if "bob" in r.messages[0]["content"]]
    assert bob_requests and all("Alice" not in r.system and "7431" not in r.system for r in bob_requests)


async def test_messages_to_one_agent_run_one_at_a_time_and_different_agents_concurrently(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(llm, "openai", key_prefix, data_dir)
    llm.set_handler(lambda req: ScriptedReply(tool_calls=[("send_message", {"message": "ok"})], delay=0.05))
    async with open_app(settings) as app:
        runtime = app.runtime
        assert runtime is not None
        sinks = [RecordingSink() for _ in range(20)]
        await asyncio.gather(*(runtime.handle(console_message("solo", f"msg {i}"), sinks[i]) for i in range(20)))
        assert all(s.messages == ["ok"] for s in sinks)
        queue = await app.stores.working.messages(console_agent("solo"))
        roles = [m.role for m in queue]
        assert roles == ["user", "assistant", "tool"] * 20, "turns of one agent never interleave"
        assert sorted(int(m.content.rsplit(" ", 1)[1]) for m in queue if m.role == "user") == list(range(20))
        assert llm.max_in_flight == 1
        await asyncio.gather(*(runtime.handle(console_message(f"user{i}", "hi"), RecordingSink()) for i in range(20)))
        assert llm.max_in_flight > 1, "different agents are served concurrently"
