"""The token estimate calibrated per model against the provider's counts (bot/llm/calibration.py), and the LLM
stand-in's usage fields (tests/standins/llm_usage.py) that the calibration and the cache metrics read."""

from __future__ import annotations

import pytest

from bot.llm.anthropic import AnthropicChatModel
from bot.llm.calibration import MARGIN, MAX_FACTOR, MIN_FACTOR, TokenCalibration, reported_prompt_tokens
from bot.llm.openai import OpenAIChatModel
from bot.llm.retry import RetryPolicy
from bot.llm.types import ChatMessage, ContextOverflowError, SystemPrompt
from tests.standins.llm_server import ScriptedLLMServer

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05)
STATUS = "[system] Status: now 2026-01-01 10:00 UTC."
BIG = SystemPrompt("Rules of the house. " * 400, "<human>Name: Ann</human>", volatile=STATUS)


def test_the_first_measurement_replaces_the_prior() -> None:
    calibration = TokenCalibration(1.15)
    assert calibration.factor == 1.15
    calibration.observe(1000, 950)
    assert calibration.factor == pytest.approx(0.95 * (1 + MARGIN))


def test_the_estimate_rises_fast_and_falls_slowly() -> None:
    calibration = TokenCalibration(1.0)
    calibration.observe(1000, 1000)
    calibration.observe(1000, 1400)
    risen = calibration.ratio
    assert risen >= 1.2, "half the way up in one call"
    calibration.observe(1000, 1000)
    assert calibration.ratio >= risen - 0.05, "a tenth of the way down"


def test_a_varying_ratio_keeps_a_matching_headroom() -> None:
    calibration = TokenCalibration(1.0)
    ratios = [1.3 * (1.02 if i % 2 else 0.98) for i in range(40)]
    for ratio in ratios:
        calibration.observe(10_000, round(10_000 * ratio))
    assert calibration.ratio == pytest.approx(1.3, rel=0.03)
    assert calibration.factor >= max(ratios), "the headroom covers the spread"
    assert calibration.factor <= 1.3 * 1.1, "and not much more"


def test_nonsense_counts_cannot_drive_the_budget_anywhere_absurd() -> None:
    calibration = TokenCalibration(1.0)
    calibration.observe(1000, 0)  # a server that reports no usage
    calibration.observe(4000, 60)  # one that counts only what its KV cache did not hold (Ollama)
    calibration.observe(1000, 10**7)
    calibration.observe(20, 2000)  # a tiny prompt: framing dominates
    assert calibration.samples == 0 and calibration.factor == 1.0
    for _ in range(20):
        calibration.observe(1000, 2400)
        calibration.observe(1000, 800)
    assert MIN_FACTOR <= calibration.factor <= MAX_FACTOR


def test_overflow_messages_name_the_prompt_size() -> None:
    assert reported_prompt_tokens("prompt is too long: 208310 tokens > 200000 maximum") == 208310
    message = "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, decrease input length"
    assert reported_prompt_tokens(message) == 197000
    openai = "However, your messages resulted in 130500 tokens. Please reduce the length of the messages."
    assert reported_prompt_tokens(openai) == 130500
    vllm = "However, you requested 5000 tokens (4000 in the messages, 1000 in the completion)."
    assert reported_prompt_tokens(vllm) == 4000
    assert reported_prompt_tokens("context window exceeded") is None


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
async def test_each_call_calibrates_the_models_counter(wire: str) -> None:
    with ScriptedLLMServer() as llm:
        llm.token_scale = 1.5
        model: AnthropicChatModel | OpenAIChatModel
        if wire == "anthropic":
            model = AnthropicChatModel("claude-test", "k", llm.anthropic_base_url, retry=FAST)
        else:
            model = OpenAIChatModel("gpt-test", "k", llm.openai_base_url, retry=FAST)
        try:
            messages = [ChatMessage("user", "hello")]
            estimate = model.count_tokens(BIG, messages, [])
            completion = await model.complete(BIG, messages, [], max_output_tokens=100)
            calibrated = model.count_tokens(BIG, messages, [])
        finally:
            await model.aclose()
    reported = completion.usage.input_tokens
    assert reported == llm.requests[0].usage["input"]
    assert abs(estimate - reported) / reported > 0.2, "the prior was off"
    assert 0 <= calibrated - reported <= 0.03 * reported, "now it is close, and not under"


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
async def test_an_overflow_error_calibrates_before_the_retry(wire: str) -> None:
    """A refused prompt's size, named in the error, corrects the counter at once (the agent then flushes)."""
    with ScriptedLLMServer() as llm:
        llm.token_scale, llm.context_window = 2.0, 3000
        model: AnthropicChatModel | OpenAIChatModel
        if wire == "anthropic":
            model = AnthropicChatModel("claude-test", "k", llm.anthropic_base_url, retry=FAST, token_factor=1.0)
        else:
            model = OpenAIChatModel("gpt-test", "k", llm.openai_base_url, retry=FAST)
        messages = [ChatMessage("user", "hello")]
        try:
            assert model.count_tokens(BIG, messages, []) + 100 < 3000, "the estimate says it fits"
            with pytest.raises(ContextOverflowError):
                await model.complete(BIG, messages, [], max_output_tokens=100)
        finally:
            await model.aclose()
    assert llm.overflows == 1
    assert model.count_tokens(BIG, messages, []) + 100 > 3000, "the estimate knows better now"


async def test_the_anthropic_standin_reads_what_the_previous_call_wrote() -> None:
    with ScriptedLLMServer() as llm:
        model = AnthropicChatModel("claude-test", "k", llm.anthropic_base_url, retry=FAST, token_factor=1.0)
        try:
            first = await model.complete(BIG, [ChatMessage("user", "hello")], [], max_output_tokens=100)
            queue = [ChatMessage("user", "hello"), ChatMessage("assistant", "Hi!"), ChatMessage("user", "how are you")]
            second = await model.complete(BIG, queue, [], max_output_tokens=100)
            short = SystemPrompt("Be brief.", volatile=STATUS)
            tiny = await model.complete(short, [ChatMessage("user", "hi")], [], max_output_tokens=100)
        finally:
            await model.aclose()
    assert first.usage.cache_read_tokens == 0 and first.usage.cache_write_tokens > 1000
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens, "read up to the last breakpoint"
    assert 0 < second.usage.cache_write_tokens < 50, "wrote only the new messages"
    uncached = llm.requests[1].usage["input"] - second.usage.cache_read_tokens - second.usage.cache_write_tokens
    assert 0 < uncached < 30, "only the status note after the last breakpoint"
    assert tiny.usage.cache_read_tokens == tiny.usage.cache_write_tokens == 0, "under 1,024 tokens nothing caches"


async def test_the_openai_standin_caches_long_prefixes_in_steps_of_128() -> None:
    with ScriptedLLMServer() as llm:
        model = OpenAIChatModel("gpt-test", "k", llm.openai_base_url, retry=FAST)
        try:
            first = await model.complete(BIG, [ChatMessage("user", "hello")], [], max_output_tokens=100)
            queue = [ChatMessage("user", "hello"), ChatMessage("assistant", "Hi!"), ChatMessage("user", "how are you")]
            second = await model.complete(BIG, queue, [], max_output_tokens=100)
        finally:
            await model.aclose()
    assert first.usage.cache_read_tokens == 0 and first.usage.cache_write_tokens == 0
    cached = second.usage.cache_read_tokens
    assert cached >= 1024 and cached % 128 == 0
    # all but the tail from the message the status note was appended to, rounded down to a step
    assert second.usage.input_tokens - 2 * 128 < cached < second.usage.input_tokens
