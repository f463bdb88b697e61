"""Helpers for scenario tests: settings pointing at the stand-ins and a recording sink.

Messages are built with the console adapter's own ``adapters.console.console_message``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.events import OutboundReply, ReplyKind
from bot.settings import Settings
from tests.conftest import REDIS_URL
from tests.standins.llm_server import ScriptedLLMServer


def settings_for(llm: ScriptedLLMServer, wire: str, key_prefix: str, data_dir: Path, **extra: Any) -> Settings:
    """Settings for one test: the stand-in model on ``wire``, an isolated Redis prefix, a temp data dir."""
    values: dict[str, Any] = {
        "MEMBOT_LLM_PROVIDER": wire,
        "MEMBOT_MODEL": "scripted-model",
        "REDIS_URL": REDIS_URL,
        "MEMBOT_REDIS_PREFIX": key_prefix,
        "MEMBOT_DATA_DIR": data_dir,
        "MEMBOT_EMBEDDER": "hashing",
        "MEMBOT_LLM_TIMEOUT": 10,
        "MEMBOT_HTTP_PORT": 0,  # a free port: tests run side by side
    }
    if wire == "anthropic":
        values.update(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=llm.anthropic_base_url)
    else:
        values.update(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=llm.openai_base_url)
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def env_for(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for a `membot` subprocess."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None or field.alias is None:
            continue
        env[field.alias] = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return env


class RecordingSink:
    """Collects what a user would see."""

    def __init__(self) -> None:
        self.replies: list[OutboundReply] = []
        self.typing_count = 0

    async def send(self, reply: OutboundReply) -> None:
        self.replies.append(reply)

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        self.typing_count += 1
        yield

    @property
    def messages(self) -> list[str]:
        return [r.text for r in self.replies if r.kind is ReplyKind.MESSAGE]

    @property
    def notices(self) -> list[str]:
        return [r.text for r in self.replies if r.kind is ReplyKind.NOTICE]
