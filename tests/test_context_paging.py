"""Context window paging: a 200-turn conversation in a 3,000-token window stays within budget, alerts once per
cycle, is summarized, and the evicted detail is found again by search."""

from __future__ import annotations

from pathlib import Path

from adapters.console import console_agent, console_message
from bot.app import open_app
from bot.core.context import Budget, cut_points
from bot.core.tools import tool_specs
from bot.llm.pairing import pair_tool_calls
from bot.llm.tokens import TokenCounter
from bot.llm.types import ChatMessage, SystemPrompt, ToolCall
from tests.scenario import RecordingSink, settings_for
from tests.standins.brain import is_summary_request
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer

ALERT = "Memory pressure"


def _observed_tokens(request: ObservedRequest, counter: TokenCounter) -> int:
    """Re-count an observed request with membot's own counter (system, messages, the tools offered)."""
    messages = []
    for m in request.messages:
        calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in m.get("tool_calls") or ())
        messages.append(ChatMessage(m["role"], m["content"], calls, m.get("tool_call_id")))
    tools = [spec for spec in tool_specs() if spec.name in request.tools]
    return counter.count(SystemPrompt(request.system), messages, tools)


async def test_200_turns_in_a_3000_token_window(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    settings = settings_for(
        llm, "openai", key_prefix, data_dir, MEMBOT_CONTEXT_WINDOW=3000, MEMBOT_MAX_OUTPUT_TOKENS=256
    )
    budget = Budget(3000, 256)
    agent = console_agent("long")
    async with open_app(settings) as app:
        assert app.runtime is not None
        sink = RecordingSink()
        await app.runtime.handle(console_message("long", "turn 1: my locker combination is 5-18-33, keep it"), sink)
        for turn in range(2, 201):
            await app.runtime.handle(console_message("long", f"turn {turn}: the weather is fine today"), sink)
        summary = await app.stores.working.summary(agent)
        queue = await app.stores.working.messages(agent)
        assert all("locker" not in m.content for m in queue), "turn 1 was evicted from the context"
        await app.runtime.handle(console_message("long", "search: locker combination"), sink)
    assert len(sink.messages) == 201
    assert "5-18-33" in sink.messages[-1], "conversation_search finds the evicted detail"
    assert summary and "turns" in summary

    counter = TokenCounter(1.0)
    cycles: list[int] = [0]  # alerts raised per eviction cycle
    seen_alerts = 0
    for request in llm.requests:
        if is_summary_request(request):
            cycles.append(0)
            continue
        assert _observed_tokens(request, counter) <= budget.tokens, "a prompt went over budget"
        alerts = sum(ALERT in m["content"] for m in request.messages)
        if alerts > seen_alerts:
            cycles[-1] += alerts - seen_alerts
        seen_alerts = alerts
    assert len(cycles) >= 5, "the window overflowed and was summarized several times"
    assert all(count <= 1 for count in cycles), f"more than one alert in a cycle: {cycles}"
    assert sum(cycles) >= len(cycles) - 1, "the alert was raised in the cycles that ended in a flush"


def test_the_queue_is_repaired_so_every_tool_call_has_one_result() -> None:
    call = ToolCall("c1", "archival_memory_search", "{}")
    queue = [ChatMessage("user", "hi"), ChatMessage("assistant", "", (call,)), ChatMessage("user", "again")]
    repaired = pair_tool_calls(queue)
    assert [m.role for m in repaired] == ["user", "assistant", "tool", "user"]
    assert repaired[2].tool_call_id == "c1"
    orphan = [ChatMessage("tool", "x", tool_call_id="gone"), ChatMessage("user", "hi")]
    kept = pair_tool_calls(orphan)  # a result without its call is kept, as text
    assert [m.role for m in kept] == ["user", "user"] and kept[0].content.endswith("\nx")


def test_cut_points_never_split_a_call_from_its_result() -> None:
    call = ToolCall("c1", "send_message", "{}")
    queue = [
        ChatMessage("user", "a"),
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", "ok", tool_call_id="c1"),
        ChatMessage("user", "b"),
        ChatMessage("assistant", "thinking"),
    ]
    cuts = cut_points(queue)
    assert 2 not in cuts
    assert cuts[0] == 3, "a cut before a user message is preferred"


def test_cut_points_keep_the_unanswered_message_with_the_alert_after_it() -> None:
    queue = [
        ChatMessage("user", "old"),
        ChatMessage("assistant", "old answer"),
        ChatMessage("user", "the question being answered"),
        ChatMessage("user", "[system] Memory pressure: ..."),
    ]
    assert cut_points(queue) == [2, 1], "never cut between the unanswered message and the alert"
