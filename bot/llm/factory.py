"""Builds the configured ``ChatModel``: ``MEMBOT_LLM_PROVIDER`` picks the implementation."""

from __future__ import annotations

from bot.core.ports import ChatModel
from bot.llm.retry import RetryPolicy

__all__ = ["PROVIDERS", "build_chat_model"]

PROVIDERS = ("anthropic", "openai")


def build_chat_model(
    provider: str,
    model: str,
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float = 60.0,
    retry: RetryPolicy | None = None,
    stream: bool = True,
) -> ChatModel:
    """A chat model for ``provider`` ("anthropic" or "openai"); ``base_url`` points at a gateway or stand-in;
    ``stream``: stream the answers a reply is shown from as it grows.

    Raises ValueError for an unknown provider, an empty model name, or a missing API key where one is required
    (the official endpoints; a custom ``base_url`` may need none).
    """
    name = provider.strip().lower()
    if name not in PROVIDERS:
        raise ValueError(f"unknown LLM provider {provider!r}: set MEMBOT_LLM_PROVIDER to one of {', '.join(PROVIDERS)}")
    if not model.strip():
        raise ValueError("no model name: set MEMBOT_MODEL")
    # Each SDK takes a second or more to import: load only the one in use.
    if name == "anthropic":
        from bot.llm.anthropic import AnthropicChatModel

        if not api_key and not base_url:
            raise ValueError("the anthropic provider needs an API key: set ANTHROPIC_API_KEY")
        return AnthropicChatModel(
            model, api_key=api_key or "no-key", base_url=base_url, timeout=timeout, retry=retry, stream=stream
        )
    if not api_key and not base_url:
        raise ValueError("the openai provider needs an API key: set OPENAI_API_KEY (or OPENAI_BASE_URL for local)")
    from bot.llm.openai import OpenAIChatModel

    return OpenAIChatModel(
        model, api_key=api_key or None, base_url=base_url, timeout=timeout, retry=retry, stream=stream
    )
