"""SIGTERM to a real `membot run` process (Slack HTTP mode, against the Slack and model stand-ins): it stops taking
events, finishes the turn in flight, and exits 0; a turn that outlasts MEMBOT_SHUTDOWN_TIMEOUT is cancelled, with
the user's message already saved."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from bot.app import open_memory_app
from bot.core.events import AgentKey
from tests.ops.slack_process import Running, membot_run, posted, slack_settings
from tests.scenario import eventually
from tests.standins.llm_server import ScriptedLLMServer, ScriptedReply
from tests.standins.slack_api import SlackStandIn

ANN = "UANN"


@asynccontextmanager
async def stand_in() -> AsyncIterator[tuple[SlackStandIn, aiohttp.ClientSession]]:
    async with SlackStandIn() as slack, aiohttp.ClientSession() as session:
        slack.add_user(ANN, "Ann")
        yield slack, session


async def refused(running: Running) -> bool:
    """Whether the Slack port no longer takes connections (probed with a bare TCP connect, not an event)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", running.settings.slack_http_port)
    except OSError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_sigterm_finishes_the_turn_in_flight_then_exits_0(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    release = threading.Event()
    llm.push(ScriptedReply(tool_calls=[("send_message", {"message": "finished after the signal"})], hold=release))
    try:
        async with (
            stand_in() as (slack, session),
            membot_run(slack_settings(llm, key_prefix, data_dir, slack), slack, session, tmp_path) as running,
        ):
            assert await running.dm(ANN, "please think slowly") == 200
            await eventually(lambda: llm.in_flight == 1, what="the turn to reach the model")
            running.process.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                status, body = await running.health()
                return status == 503 and body["status"] == "draining"

            await eventually(draining, what="/healthz to report draining")
            await eventually(lambda: refused(running), what="the Slack port to stop taking events")
            assert running.process.returncode is None, "it waits for the turn in flight"
            release.set()
            stderr = await running.stderr_after_exit()
            assert running.process.returncode == 0, stderr
            assert "Traceback" not in stderr
            assert posted(running.slack) == ["finished after the signal"]
    finally:
        release.set()
    async with open_memory_app(running.settings) as app:  # the process is gone: its Qdrant is free
        view = await app.admin.show(AgentKey("slack", SlackStandIn.team_id, ANN))
    assert view.recall_count == 2, "the user's message and the reply both reached recall before exit"


async def test_a_turn_longer_than_the_shutdown_timeout_is_cancelled_and_the_process_still_exits_0(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    never = threading.Event()
    llm.push(ScriptedReply(tool_calls=[("send_message", {"message": "too late"})], hold=never))
    try:
        async with (
            stand_in() as (slack, session),
            membot_run(
                slack_settings(llm, key_prefix, data_dir, slack, MEMBOT_SHUTDOWN_TIMEOUT=1), slack, session, tmp_path
            ) as running,
        ):
            assert await running.dm(ANN, "a very long question") == 200
            await eventually(lambda: llm.in_flight == 1, what="the turn to reach the model")
            running.process.send_signal(signal.SIGTERM)
            stderr = await running.stderr_after_exit()
            assert running.process.returncode == 0, stderr
            assert "1 turn(s) did not finish in time and were cancelled" in stderr
            assert posted(running.slack) == []
    finally:
        never.set()
    async with open_memory_app(running.settings) as app:
        agent = AgentKey("slack", SlackStandIn.team_id, ANN)
        view = await app.admin.show(agent)
        queue = await app.stores.working.messages(agent)
    assert view.recall_count == 1, "the user's message was saved before the model was asked"
    assert "a very long question" in queue[0].content
