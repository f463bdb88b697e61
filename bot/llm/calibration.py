"""The token estimate calibrated against what the provider counts, per model.

``bot.llm.tokens`` counts cl100k tokens and scales them by a factor. A blanket factor is wrong both ways: Claude's
tokenizer yields 10–20 % more tokens than cl100k on prose and more on code, the o200k family a few percent fewer;
a factor set high enough for the worst case wastes context on every other prompt, one set low overruns windows.

So each call's reported input tokens (the whole prompt, cached parts included) are compared with the raw count of
the same prompt, and the ratio is smoothed:

- the first sample replaces the prior factor outright (the prior is a guess, a measurement is not);
- later samples move the estimate fast upwards (``RISE``) and slowly downwards (``FALL``): under-estimating risks
  an overflow, over-estimating only costs a little context;
- the typical deviation of a sample from the estimate is smoothed too, and the factor is the estimate plus twice
  that deviation plus ``MARGIN``: when the ratio varies from prompt to prompt the budget keeps a matching headroom,
  when it is steady the headroom shrinks to the margin;
- ratios outside ``[MIN_FACTOR, MAX_FACTOR]`` are not a tokenizer's difference but an accounting quirk (a server
  that reports no usage, or, like Ollama, only the prompt tokens it had to evaluate after reusing its KV cache) and
  are ignored, as are prompts under ``MIN_SAMPLE_TOKENS`` (framing dominates them); the factor stays in that range.
  A quirk that stays inside it only pulls the estimate down slowly, and an overflow error that names the prompt's
  size (``reported_prompt_tokens``) pushes it back up at once.
"""

from __future__ import annotations

import re

__all__ = ["MAX_FACTOR", "MIN_FACTOR", "TokenCalibration", "reported_prompt_tokens"]

MIN_FACTOR = 0.7
MAX_FACTOR = 2.5
MIN_SAMPLE_TOKENS = 256
RISE = 0.5
FALL = 0.1
DEVIATION_WEIGHT = 0.2
MARGIN = 0.01

# Prompt sizes named in overflow errors: Anthropic "prompt is too long: 208310 tokens > 200000 maximum" and "input
# length and `max_tokens` exceed context limit: 197000 + 8192 > 200000"; OpenAI "your messages resulted in 130000
# tokens"; vLLM "you requested 5000 tokens (4000 in the messages, 1000 in the completion)".
_REPORTED = (
    re.compile(r"prompt is too long: (\d+) tokens", re.IGNORECASE),
    re.compile(r"exceed context limit: (\d+) \+", re.IGNORECASE),
    re.compile(r"messages resulted in (\d+) tokens", re.IGNORECASE),
    re.compile(r"\((\d+) in the messages", re.IGNORECASE),
)


def reported_prompt_tokens(message: str) -> int | None:
    """The prompt's size in the provider's tokens, when an overflow error message names it."""
    for pattern in _REPORTED:
        if match := pattern.search(message):
            return int(match.group(1))
    return None


def _clamp(value: float) -> float:
    return min(MAX_FACTOR, max(MIN_FACTOR, value))


class TokenCalibration:
    """The factor from raw cl100k counts to one model's tokens: ``prior`` until a call has been measured."""

    def __init__(self, prior: float) -> None:
        if prior <= 0:
            raise ValueError("factor must be positive")
        self.prior = prior
        self.samples = 0
        self._ratio = prior
        self._deviation = 0.0

    @property
    def ratio(self) -> float:
        """The smoothed ratio of reported to raw tokens (the prior before any sample)."""
        return self._ratio

    @property
    def factor(self) -> float:
        """What raw counts are multiplied by: the prior, or the smoothed ratio with its headroom."""
        if self.samples == 0:
            return self.prior
        return _clamp(self._ratio * (1 + MARGIN) + 2 * self._deviation)

    def observe(self, raw: int, reported: int) -> None:
        """Take one call's raw estimate and the provider's count of the same prompt into account."""
        if raw < MIN_SAMPLE_TOKENS:
            return
        ratio = reported / raw
        if not MIN_FACTOR <= ratio <= MAX_FACTOR:
            return
        if self.samples == 0:
            self._ratio = ratio
        else:
            error = ratio - self._ratio
            self._ratio += (RISE if error > 0 else FALL) * error
            self._deviation += DEVIATION_WEIGHT * (abs(error) - self._deviation)
        self.samples += 1
