"""Helpers for scenario tests: settings pointing at the stand-ins and a recording sink.

Messages are built with the console adapter's own ``adapters.console.console_message``, or ``slack_said`` for a
Slack user whose DMs and channel messages share one agent."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.normalize import slack_agent
from bot.core.events import InboundMessage, OutboundReply, ReplyKind
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


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 30.0, what: str = "") -> None:
    """Poll ``check`` until it is true; fail after ``within`` seconds (a safety net, not a timing assertion)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(0.05)


def slack_said(text: str, *, dm: bool, message_id: str | None = None) -> InboundMessage:
    """Ann (slack:T1:U1) writes in a DM (D1) or in #general (C1)."""
    return InboundMessage(
        agent_key=slack_agent("T1", "U1"),
        platform="slack",
        workspace_id="T1",
        channel_id="D1" if dm else "C1",
        author_id="U1",
        author_name="Ann",
        text=text,
        is_dm=dm,
        message_id=message_id or uuid.uuid4().hex,
        channel_name=None if dm else "general",
    )
