"""Fixtures: the real membot app and Slack adapter in HTTP mode on 127.0.0.1, the Web API stand-in, the scripted model.

``make_slack(**settings)`` starts one (extra settings by their environment names); ``slack`` is the default one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.slack import SlackAdapter, build_slack_adapter
from bot.app import open_app
from tests.scenario import settings_for
from tests.slack.harness import SIGNING_SECRET, SlackHarness
from tests.standins.brain import Brain
from tests.standins.llm_server import ScriptedLLMServer
from tests.standins.slack_api import SlackStandIn

ANN, BOB, ADA = "UANN", "UBOB", "UADA"  # Ada is a workspace admin

MakeSlack = Callable[..., Awaitable[SlackHarness]]


@pytest.fixture
def llm() -> Iterator[tuple[ScriptedLLMServer, Brain]]:
    brain = Brain()
    server = ScriptedLLMServer(brain)
    server.start()
    yield server, brain
    server.stop()


@pytest.fixture
async def make_slack(llm: tuple[ScriptedLLMServer, Brain], key_prefix: str, data_dir: Path) -> AsyncIterator[MakeSlack]:
    async with AsyncExitStack() as stack:

        async def make(**extra: Any) -> SlackHarness:
            server, brain = llm
            slack = await stack.enter_async_context(SlackStandIn())
            slack.add_user(ANN, "Ann")
            slack.add_user(BOB, "Bob")
            slack.add_user(ADA, "Ada", is_admin=True)
            values: dict[str, Any] = {
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.api_url,
                "SLACK_HTTP_HOST": "127.0.0.1",
                "SLACK_HTTP_PORT": 0,
                **extra,
            }
            settings = settings_for(server, "openai", key_prefix, data_dir, **values)
            app = await stack.enter_async_context(open_app(settings))
            assert app.services is not None
            adapter = build_slack_adapter(app.services)
            assert isinstance(adapter, SlackAdapter)
            task = asyncio.create_task(adapter.run())
            stack.push_async_callback(_stop, task)
            ready = asyncio.create_task(adapter.ready.wait())
            await asyncio.wait([task, ready], timeout=15, return_when=asyncio.FIRST_COMPLETED)
            if not adapter.ready.is_set():
                ready.cancel()
                await task  # raises the reason it stopped
            session = await stack.enter_async_context(aiohttp.ClientSession())
            return SlackHarness(app, adapter, slack, server, brain, session)

        yield make


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def slack(make_slack: MakeSlack) -> SlackHarness:
    return await make_slack()
