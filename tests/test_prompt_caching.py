"""Prompts that cache: consecutive prompts of an agent share their prefix, the providers' cache fields reach
``/metrics``, and the token budget calibrates itself against the provider's counts.

Through the real app and the real SDKs, against the LLM stand-in, which reports usage (prompt caching included) as
the APIs document it (tests/standins/llm_usage.py)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from adapters.console import console_agent, console_message
from bot.app import App, open_app
from bot.core.context import Budget
from bot.llm.base import SdkChatModel
from bot.llm.metered import MeteredChatModel
from tests.scenario import RecordingSink, settings_for
from tests.standins.brain import is_summary_request
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer
from tests.standins.llm_usage import prompt_tokens, shared_prefix_tokens

WIRES = ["anthropic", "openai"]
CHAT = ["hello there", "how was your day?", "I went hiking on Sunday", "the weather was fine", "tell me a story"]


def shared_prefix(first: ObservedRequest, second: ObservedRequest) -> float:
    """The share of ``first``'s prompt tokens that ``second`` repeats byte for byte at its start (cache order:
    tools, system, messages; cache_control markers are not content)."""
    a, b = prompt_tokens(first.wire, first.raw), prompt_tokens(second.wire, second.raw)
    return shared_prefix_tokens(a, b) / len(a)


def sdk_model(app: App) -> SdkChatModel:
    model = app.model.inner if isinstance(app.model, MeteredChatModel) else app.model
    assert isinstance(model, SdkChatModel)
    return model


def token_metric(app: App, provider: str, kind: str) -> float:
    text = app.metrics.render().decode()
    match = re.search(rf'membot_model_tokens_total{{kind="{kind}",provider="{provider}"}} (\S+)', text)
    assert match, f"no {kind} token counter for {provider}"
    return float(match.group(1))


@pytest.mark.parametrize("wire", WIRES)
async def test_consecutive_prompts_share_their_prefix(
    wire: str, llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    async with open_app(settings_for(llm, wire, key_prefix, data_dir)) as app:
        assert app.runtime is not None
        for text in CHAT:
            await app.runtime.handle(console_message("cache", text), RecordingSink())
        requests = list(llm.requests)
        shares = [shared_prefix(a, b) for a, b in itertools.pairwise(requests)]
        print(f"{wire}: shared prefix of consecutive prompts: " + ", ".join(f"{100 * s:.1f} %" for s in shares))
        assert len(requests) >= len(CHAT) and min(shares) >= 0.9, shares
        assert all(r.status.startswith("[system] Status: now") for r in requests), "the clock is in the status note"
        assert all("Status: now" not in r.raw["messages"][0]["content"] for r in requests if wire == "openai")

        # the provider read what the previous call wrote: from the second call on, most of the prompt is cached
        for request in requests[1:]:
            assert request.usage["cache_read"] >= 0.9 * request.usage["input"] - 200, request.usage
        read = sum(r.usage["cache_read"] for r in requests)
        written = sum(r.usage["cache_write"] for r in requests)
        assert token_metric(app, wire, "cache_read") == read > 0
        assert token_metric(app, wire, "cache_write") == written
        assert token_metric(app, wire, "input") == sum(r.usage["input"] for r in requests)
        if wire == "anthropic":
            assert written > 0, "Anthropic reports what each call wrote"
        else:
            assert written == 0, "OpenAI caches automatically and reports no writes"

        # a memory edit changes core memory: the tools and instructions stay cached (Anthropic's first breakpoint)
        before = len(llm.requests)
        await app.runtime.handle(console_message("cache", "my name is Ann"), RecordingSink())
        edited = llm.requests[before + 1]  # the step after core_memory_append
        assert "Name: Ann" in edited.system and "Name: Ann" not in llm.requests[before].system
        assert 0 < shared_prefix(llm.requests[before], edited) < 1
        if wire == "anthropic":
            assert edited.usage["cache_read"] > 0 and edited.usage["cache_write"] > 0


@pytest.mark.parametrize(
    ("wire", "scale"),
    [("openai", 1.35), ("anthropic", 0.95)],
    ids=["openai-counts-more", "anthropic-counts-less-than-the-prior"],
)
async def test_the_budget_calibrates_to_the_providers_count(
    wire: str, scale: float, llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    """The stand-in's model counts ``scale`` times cl100k (plus its own framing). Prompts fill the window up to the
    eviction point, and the window is never exceeded: no request is refused, none reported over the budget."""
    window, max_output = 3600, 256  # room for the fixed part (instructions and ten function specs) at x1.35
    budget = Budget(window, max_output)
    llm.token_scale = scale
    llm.context_window = window
    settings = settings_for(
        llm, wire, key_prefix, data_dir, MEMBOT_CONTEXT_WINDOW=window, MEMBOT_MAX_OUTPUT_TOKENS=max_output
    )
    async with open_app(settings) as app:
        assert app.runtime is not None
        model = sdk_model(app)
        for turn in range(1, 61):
            await app.runtime.handle(
                console_message("calibrate", f"turn {turn}: the weather is fine today"), RecordingSink()
            )
        queue = await app.stores.working.messages(console_agent("calibrate"))
    turns = [r for r in llm.requests if not is_summary_request(r)]
    reported = [r.usage["input"] for r in turns if r.usage]
    assert llm.overflows == 0, "no prompt was refused for not fitting the window"
    assert len(reported) == len(turns) and max(reported) <= budget.tokens
    assert any(is_summary_request(r) for r in llm.requests), "the window filled and was summarized"
    assert max(reported[5:]) >= 0.9 * budget.tokens, f"the window is used, not wasted: {max(reported)}"
    assert queue, "the conversation goes on"
    # the factor converged to the provider's ratio (with a small headroom), from a prior that was off
    calibration = model.counter.calibration
    assert calibration.samples >= 50
    print(f"{wire} x{scale}: factor {calibration.factor:.3f}, ratio {calibration.ratio:.3f}, max {max(reported)}")
    assert 1.0 <= calibration.factor / calibration.ratio <= 1.06
