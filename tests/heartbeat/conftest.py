"""Fixtures for heartbeat tests: the scripted model, short intervals, a recording chat platform, polling helpers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.console import console_agent
from adapters.slack.normalize import slack_agent
from bot.app import App
from bot.core.events import AgentKey, InboundMessage, ReplyAddress
from bot.core.ports import PlatformAdapter
from bot.runtime.heartbeat import HeartbeatConfig, Heartbeats
from bot.settings import Settings
from tests.scenario import settings_for
from tests.standins.brain import heartbeat_event
from tests.standins.llm_server import ScriptedLLMServer

QUIET = 0.005  # MEMBOT_REFLECT_AFTER_MINUTES in these tests: 0.3 seconds


@pytest.fixture
def make_settings(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> Callable[..., Settings]:
    """Settings on the stand-in model with short heartbeat intervals; keyword arguments override."""

    def make(**extra: Any) -> Settings:
        values: dict[str, Any] = {"MEMBOT_REFLECT_AFTER_MINUTES": QUIET, **extra}
        return settings_for(llm, "anthropic", key_prefix, data_dir, **values)

    return make


class RecordingAdapter:
    """Stands in for a remote chat platform: records what membot sends unprompted."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.sent: list[tuple[ReplyAddress, str]] = []

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def send_direct(self, address: ReplyAddress, text: str) -> None:
        self.sent.append((address, text))


def heartbeats_for(app: App, adapters: list[PlatformAdapter] | None = None) -> Heartbeats:
    """Heartbeats on the app's real runtime and stores, without a scheduler (for driving them by hand)."""
    assert app.runtime is not None
    return Heartbeats(
        runtime=app.runtime,
        activity=app.stores.activity,
        core=app.stores.core,
        recall=app.stores.recall,
        archival=app.stores.archival,
        audit=app.stores.audit,
        adapters={adapter.platform: adapter for adapter in adapters or []},
        config=HeartbeatConfig.from_settings(app.settings),
    )


def message(
    platform: str, user: str, text: str, *, channel: str = "D1", workspace: str | None = None, dm: bool = True
) -> InboundMessage:
    if platform == "console":
        agent = console_agent(user)
    elif platform == "slack":
        agent = slack_agent(workspace, user)
    else:  # Discord's rule (adapters.discord.normalize.agent_for) for the tests' non-numeric ids
        agent = AgentKey(platform, workspace if workspace and not dm else "dm", user)
    return InboundMessage(
        agent_key=agent,
        platform=platform,
        workspace_id=workspace,
        channel_id=channel,
        author_id=user,
        author_name=user,
        text=text,
        is_dm=dm,
        message_id=uuid.uuid4().hex,
    )


def reflection_events(llm: ScriptedLLMServer) -> list[str]:
    """The reflection events the model was woken with (the first request of each reflection), oldest first."""
    events = []
    for request in llm.requests:
        last = request.messages[-1] if request.messages else {}
        event = heartbeat_event(request.messages) if last.get("role") == "user" else None
        if event and event.startswith("[system] Heartbeat (reflection)"):
            events.append(event)
    return events


async def human_block(app: App, agent: AgentKey) -> str:
    return next((b.value for b in await app.stores.core.blocks(agent) if b.label == "human"), "")
