"""Fixtures for Discord scenarios: the Discord stand-in, the scripted model, the real app and the adapter running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import DiscordAdapter, build_discord_adapter
from bot.app import App, open_app
from tests.scenario import settings_for
from tests.standins.discord_server import DiscordStandIn
from tests.standins.llm_server import ScriptedLLMServer


@dataclass
class DiscordHarness:
    """A running membot on the Discord stand-in."""

    discord: DiscordStandIn
    app: App
    adapter: DiscordAdapter
    llm: ScriptedLLMServer


@pytest.fixture
def discord_settings() -> dict[str, Any]:
    """Extra settings for the scenario; tests override by parametrizing or updating this dict."""
    return {}


@pytest.fixture
def resume_gateway_url() -> str | None:
    """What the stand-in's READY names as ``resume_gateway_url`` (a path is on its own host); None: its gateway."""
    return None


@pytest.fixture
async def harness(
    llm: ScriptedLLMServer,
    key_prefix: str,
    data_dir: Path,
    discord_settings: dict[str, Any],
    resume_gateway_url: str | None,
) -> AsyncIterator[DiscordHarness]:
    async with DiscordStandIn() as discord_api:
        discord_api.resume_gateway_url = resume_gateway_url
        settings = settings_for(
            llm,
            "openai",
            key_prefix,
            data_dir,
            DISCORD_TOKEN="test-token",
            DISCORD_API_BASE_URL=discord_api.base_url,
            **discord_settings,
        )
        async with open_app(settings) as app:
            assert app.services is not None
            adapter = build_discord_adapter(app.services)
            assert isinstance(adapter, DiscordAdapter)
            task = asyncio.create_task(adapter.run())
            try:
                await asyncio.wait_for(discord_api.ready.wait(), timeout=15)
                yield DiscordHarness(discord_api, app, adapter, llm)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
