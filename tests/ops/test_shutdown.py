"""SIGTERM to a real `membot run` process (Slack HTTP mode, against the Slack and model stand-ins): it stops taking
events, finishes the turn in flight, and exits 0; a turn that outlasts MEMBOT_SHUTDOWN_TIMEOUT is cancelled, with
the user's message already saved."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.app import open_app
from bot.events import AgentKey
from bot.settings import Settings
from tests.ops.helpers import MEMBOT, eventually, free_port, membot_env
from tests.scenario import settings_for
from tests.slack.harness import SIGNING_SECRET, sign
from tests.standins.llm_server import ScriptedLLMServer, ScriptedReply
from tests.standins.slack_api import SlackStandIn

ANN = "UANN"


@dataclass
class Running:
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

    async def dm(self, text: str) -> int:
        """POST a signed DM event from Ann; returns the HTTP status."""
        event = {"type": "message", "channel": f"D{ANN}", "channel_type": "im", "user": ANN, "text": text}
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

    def posted(self) -> list[str]:
        return [str(call.params.get("text", "")) for call in self.slack.calls if call.method == "chat.postMessage"]


@asynccontextmanager
async def membot_run(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, cwd: Path, **extra: object
) -> AsyncIterator[Running]:
    """`membot run` in Slack HTTP mode as a subprocess, healthy; killed at the end if it is still running."""
    async with SlackStandIn() as slack, aiohttp.ClientSession() as session:
        slack.add_user(ANN, "Ann")
        settings = settings_for(
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
                    return (await running.health())[0] == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(healthy, within=60, what="membot run to be healthy")
            yield running
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def refused(running: Running) -> bool:
    """Whether the Slack port no longer takes connections (probed with a bare TCP connect, not an event)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", running.settings.slack_http_port)
    except OSError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def stderr_after_exit(running: Running) -> str:
    async with asyncio.timeout(60):  # a safety net: the process must exit by itself
        _, err = await running.process.communicate()
    return err.decode()


async def test_sigterm_finishes_the_turn_in_flight_then_exits_0(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    release = threading.Event()
    llm.push(ScriptedReply(tool_calls=[("send_message", {"message": "finished after the signal"})], hold=release))
    try:
        async with membot_run(llm, key_prefix, data_dir, tmp_path) as running:
            assert await running.dm("please think slowly") == 200
            await eventually(lambda: llm.in_flight == 1, what="the turn to reach the model")
            running.process.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                status, body = await running.health()
                return status == 503 and body["status"] == "draining"

            await eventually(draining, what="/healthz to report draining")
            await eventually(lambda: refused(running), what="the Slack port to stop taking events")
            assert running.process.returncode is None, "it waits for the turn in flight"
            release.set()
            stderr = await stderr_after_exit(running)
            assert running.process.returncode == 0, stderr
            assert "Traceback" not in stderr
            assert running.posted() == ["finished after the signal"]
    finally:
        release.set()
    async with open_app(running.settings, with_model=False) as app:  # the process is gone: its Qdrant is free
        view = await app.admin.show(AgentKey("slack", SlackStandIn.team_id, ANN))
    assert view.recall_count == 2, "the user's message and the reply both reached recall before exit"


async def test_a_turn_longer_than_the_shutdown_timeout_is_cancelled_and_the_process_still_exits_0(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    never = threading.Event()
    llm.push(ScriptedReply(tool_calls=[("send_message", {"message": "too late"})], hold=never))
    try:
        async with membot_run(llm, key_prefix, data_dir, tmp_path, MEMBOT_SHUTDOWN_TIMEOUT=1) as running:
            assert await running.dm("a very long question") == 200
            await eventually(lambda: llm.in_flight == 1, what="the turn to reach the model")
            running.process.send_signal(signal.SIGTERM)
            stderr = await stderr_after_exit(running)
            assert running.process.returncode == 0, stderr
            assert "1 turn(s) did not finish in time and were cancelled" in stderr
            assert running.posted() == []
    finally:
        never.set()
    async with open_app(running.settings, with_model=False) as app:
        agent = AgentKey("slack", SlackStandIn.team_id, ANN)
        view = await app.admin.show(agent)
        queue = await app.stores.working.messages(agent)
    assert view.recall_count == 1, "the user's message was saved before the model was asked"
    assert "a very long question" in queue[0].content
