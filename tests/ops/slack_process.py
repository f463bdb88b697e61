"""`membot run` as a subprocess in Slack HTTP mode against the Slack stand-in: start it, send it signed DMs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.settings import Settings
from tests.ops.helpers import MEMBOT, free_port, membot_env
from tests.scenario import eventually, settings_for
from tests.slack.harness import SIGNING_SECRET, sign
from tests.standins.llm_server import ScriptedLLMServer
from tests.standins.slack_api import SlackStandIn


def slack_settings(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, slack: SlackStandIn, **extra: object
) -> Settings:
    """Settings of one `membot run` in Slack HTTP mode on free ports, with the stand-ins."""
    return settings_for(
        llm,
        "openai",
        key_prefix,
        data_dir,
        SLACK_BOT_TOKEN=slack.bot_token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        SLACK_HTTP_HOST="127.0.0.1",
        SLACK_HTTP_PORT=free_port(),
        MEMBOT_HTTP_PORT=free_port(),
        MEMBOT_LLM_TIMEOUT=120,
        **extra,
    )


@dataclass
class Running:
    """A running `membot run` process and how to reach it."""

    process: asyncio.subprocess.Process
    settings: Settings
    slack: SlackStandIn
    session: aiohttp.ClientSession

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.slack_http_port}/slack/events"

    @property
    def healthz_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}/healthz"

    async def dm(self, user: str, text: str) -> int:
        """POST a signed DM event from ``user``; returns the HTTP status."""
        event = {"type": "message", "channel": f"D{user}", "channel_type": "im", "user": user, "text": text}
        event.update(ts=self.slack.next_ts(), team=SlackStandIn.team_id)
        self.slack.record_message(event["channel"], event)
        body = json.dumps(
            {
                "team_id": SlackStandIn.team_id,
                "api_app_id": SlackStandIn.app_id,
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": SlackStandIn.team_id, "user_id": SlackStandIn.bot_user_id}],
            }
        )
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts}
        headers["X-Slack-Signature"] = sign(body, ts)
        async with self.session.post(self.events_url, data=body.encode(), headers=headers) as response:
            return response.status

    async def health(self) -> tuple[int, dict[str, object]]:
        async with self.session.get(self.healthz_url) as response:
            return response.status, await response.json()

    async def stderr_after_exit(self) -> str:
        async with asyncio.timeout(60):  # a safety net: the process must exit by itself
            _, err = await self.process.communicate()
        return err.decode()


def posted(slack: SlackStandIn) -> list[str]:
    """Texts membot posted with chat.postMessage, in order."""
    return [str(call.params.get("text", "")) for call in slack.calls if call.method == "chat.postMessage"]


@asynccontextmanager
async def membot_run(
    settings: Settings, slack: SlackStandIn, session: aiohttp.ClientSession, cwd: Path
) -> AsyncIterator[Running]:
    """`membot run` as a subprocess, once healthy; killed at the end if it is still running."""
    process = await asyncio.create_subprocess_exec(
        *MEMBOT,
        "run",
        env=membot_env(settings),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Running(process, settings, slack, session)
    try:

        async def healthy() -> bool:
            if process.returncode is not None:
                assert process.stderr is not None
                pytest.fail(f"membot run exited: {(await process.stderr.read()).decode()}")
            try:
                if (await running.health())[0] != 200:
                    return False
                # /healthz (its own port here) can answer before the Slack server listens: wait for that too
                _, writer = await asyncio.open_connection("127.0.0.1", settings.slack_http_port)
            except (aiohttp.ClientConnectionError, OSError):
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await eventually(healthy, within=60, what="membot run to be healthy and listening for Slack events")
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
