"""A ``ChatModel`` wrapper that records every call's latency, tokens and failures in ``Metrics``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bot.core.ports import ChatModel
from bot.llm.types import ChatMessage, Completion, ModelError, ReplyPreview, SystemPrompt, ToolSpec
from bot.ops.metrics import Metrics

__all__ = ["MeteredChatModel"]


class MeteredChatModel:
    """Delegates to ``inner``; each ``complete`` is timed per provider (retries included)."""

    def __init__(self, inner: ChatModel, metrics: Metrics) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.model = inner.model
        self._metrics = metrics

    async def complete(
        self,
        system: SystemPrompt,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        *,
        max_output_tokens: int,
        preview: ReplyPreview | None = None,
    ) -> Completion:
        started = time.monotonic()
        try:
            completion = await self.inner.complete(
                system, messages, tools, max_output_tokens=max_output_tokens, preview=preview
            )
        except ModelError as exc:
            self._metrics.model_call(self.provider, time.monotonic() - started, None, exc)
            self._metrics.error(exc)
            raise
        self._metrics.model_call(self.provider, time.monotonic() - started, completion.usage, None)
        return completion

    def count_tokens(self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> int:
        return self.inner.count_tokens(system, messages, tools)

    async def aclose(self) -> None:
        await self.inner.aclose()
