"""`/healthz` tells the truth about the chat platforms (issue #12): `membot run` against the Discord and Slack
stand-ins, whose connections are cut; /healthz turns 503 naming the connection once it has been down longer than
MEMBOT_HEALTH_GRACE_SECONDS, and 200 again when the SDK has reconnected; a message after that is answered."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.discord import build_discord_adapter
from adapters.slack import build_slack_adapter
from bot.app import App, open_app
from bot.core.ports import PlatformAdapter
from bot.ops.connections import PlatformConnections
from bot.ops.health import Health
from bot.ops.serve import serve
from tests.discord.helpers import answer_to
from tests.ops.helpers import free_port
from tests.scenario import eventually, settings_for
from tests.standins.discord_server import ALICE, DiscordStandIn
from tests.standins.llm_server import ScriptedLLMServer
from tests.standins.slack_api import SlackStandIn

GRACE = 1.0  # seconds; production default 60

Report = dict[str, Any]  # a /healthz body


@asynccontextmanager
async def running(app: App, adapter: PlatformAdapter) -> AsyncIterator[Callable[[], Any]]:
    """`membot run` with ``adapter`` in the background; yields a coroutine function returning (status, /healthz)."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, lambda _: None, stop, adapters=[adapter]))
    url = f"http://127.0.0.1:{app.settings.http_port}/healthz"
    async with aiohttp.ClientSession() as session:

        async def healthz() -> tuple[int, Report]:
            async with session.get(url) as response:
                return response.status, await response.json()

        try:
            await eventually(lambda: _answers(healthz), what="/healthz to answer")
            yield healthz
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0


async def _answers(healthz: Callable[[], Any]) -> bool:
    try:
        await healthz()
    except aiohttp.ClientConnectionError:
        return False
    return True


async def until(healthz: Callable[[], Any], status: int, connection: str, connected: bool) -> Report:
    """Poll /healthz until it answers ``status`` with ``connection`` in the given state; return the report."""
    seen: list[Report] = []

    async def check() -> bool:
        code, report = await healthz()
        seen[:] = [report]
        part = report["components"].get(connection)
        return code == status and part is not None and part["connected"] is connected

    await eventually(check, within=45, what=f"/healthz {status} with {connection} connected={connected}: {seen}")
    return seen[0]


def healthy_others(report: Report, failing: str) -> bool:
    return all(part["ok"] for name, part in report["components"].items() if name != failing)


async def test_discord_gateway_outage_turns_healthz_503_then_recovers(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    async with DiscordStandIn() as discord_api:
        settings = settings_for(
            llm,
            "openai",
            key_prefix,
            data_dir,
            DISCORD_TOKEN="test-token",
            DISCORD_API_BASE_URL=discord_api.base_url,
            MEMBOT_HTTP_PORT=free_port(),
            MEMBOT_HEALTH_GRACE_SECONDS=GRACE,
        )
        async with open_app(settings) as app:
            assert app.services is not None
            async with running(app, build_discord_adapter(app.services)) as healthz:
                report = await until(healthz, 200, "discord:shard-0", connected=True)
                assert report["status"] == "ok"

                await discord_api.drop_gateway()
                down_at = time.monotonic()
                report = await until(healthz, 503, "discord:shard-0", connected=False)
                assert time.monotonic() - down_at >= GRACE, "a blip shorter than the grace period stays healthy"
                assert report["status"] == "unhealthy" and healthy_others(report, "discord:shard-0")
                shard = report["components"]["discord:shard-0"]
                assert shard["ok"] is False and "grace" in shard["detail"]

                discord_api.restore_gateway()
                report = await until(healthz, 200, "discord:shard-0", connected=True)
                assert report["status"] == "ok"
                sent = await discord_api.send_message(ALICE, "are you back?")
                [reply] = await answer_to(discord_api, sent)
                assert reply.json["content"] == "echo: are you back?"
        assert discord_api.ws_paths and set(discord_api.ws_paths) == {"/gateway-ws"}


async def test_discord_that_never_connects_is_reported_after_the_grace_period(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    """The symptom of issue #12 from outside: a bot that cannot get onto the gateway must not look healthy."""
    async with DiscordStandIn() as discord_api:
        await discord_api.drop_gateway()
        settings = settings_for(
            llm,
            "openai",
            key_prefix,
            data_dir,
            DISCORD_TOKEN="test-token",
            DISCORD_API_BASE_URL=discord_api.base_url,
            MEMBOT_HTTP_PORT=free_port(),
            MEMBOT_HEALTH_GRACE_SECONDS=GRACE,
        )
        async with open_app(settings) as app:
            assert app.services is not None
            async with running(app, build_discord_adapter(app.services)) as healthz:
                report = await until(healthz, 503, "discord:shard-0", connected=False)
                assert "connecting" in report["components"]["discord:shard-0"]["detail"]
                discord_api.restore_gateway()
                await until(healthz, 200, "discord:shard-0", connected=True)


def slack_settings(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, slack: SlackStandIn, **extra: Any) -> Any:
    slack.add_user("UANN", "Ann")
    return settings_for(
        llm,
        "openai",
        key_prefix,
        data_dir,
        SLACK_BOT_TOKEN=slack.bot_token,
        SLACK_API_URL=slack.api_url,
        MEMBOT_HTTP_PORT=free_port(),
        MEMBOT_HEALTH_GRACE_SECONDS=GRACE,
        **extra,
    )


async def test_slack_socket_mode_outage_turns_healthz_503_then_recovers(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    async with SlackStandIn() as slack:
        settings = slack_settings(llm, key_prefix, data_dir, slack, SLACK_APP_TOKEN=slack.app_token)
        async with open_app(settings) as app:
            assert app.services is not None
            async with running(app, build_slack_adapter(app.services)) as healthz:
                await until(healthz, 200, "slack:socket", connected=True)

                await slack.drop_socket()
                report = await until(healthz, 503, "slack:socket", connected=False)
                assert report["status"] == "unhealthy" and healthy_others(report, "slack:socket")

                slack.restore_socket()
                await until(healthz, 200, "slack:socket", connected=True)
                assert slack.sockets_opened == 2
                event = {"type": "message", "channel": "DUANN", "channel_type": "im", "user": "UANN"}
                event |= {"text": "still there?", "ts": f"{time.time():.6f}", "team": slack.team_id}
                envelope = {"team_id": slack.team_id, "api_app_id": slack.app_id, "event": event}
                envelope |= {"type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}"}
                await slack.socket_send("events_api", envelope)
                await slack.wait_for(lambda: slack.calls_to("chat.postMessage"), 30)
        assert slack.posted()[0]["text"] == "echo: still there?"


async def test_slack_refresh_is_a_blip_that_stays_healthy(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    """Slack retires sockets routinely (a ``disconnect`` envelope, reason refresh_requested): slack_sdk opens a new
    one at once, and /healthz stays 200 because the gap is far below the grace period."""
    async with SlackStandIn() as slack:
        settings = slack_settings(llm, key_prefix, data_dir, slack, SLACK_APP_TOKEN=slack.app_token)
        settings = settings.model_copy(update={"health_grace_seconds": 30.0})
        async with open_app(settings) as app:
            assert app.services is not None
            async with running(app, build_slack_adapter(app.services)) as healthz:
                await until(healthz, 200, "slack:socket", connected=True)
                await slack.request_refresh()
                statuses: list[int] = []

                async def reconnected() -> bool:
                    code, report = await healthz()
                    statuses.append(code)
                    return slack.sockets_opened == 2 and report["components"]["slack:socket"]["connected"]

                await eventually(reconnected, within=30, what="a new socket")
                assert set(statuses) == {200}


async def test_slack_http_listener_is_reported_where_the_load_balancer_asks(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    async with SlackStandIn() as slack:
        port = free_port()
        settings = slack_settings(
            llm,
            key_prefix,
            data_dir,
            slack,
            SLACK_SIGNING_SECRET="secret",
            SLACK_HTTP_HOST="127.0.0.1",
            SLACK_HTTP_PORT=port,
            MEMBOT_HTTP_HOST="127.0.0.1",
        )
        settings = settings.model_copy(update={"http_port": port})  # /healthz on the Slack port only
        async with open_app(settings) as app:
            assert app.services is not None
            async with running(app, build_slack_adapter(app.services)) as healthz:
                report = await until(healthz, 200, "slack:http", connected=True)
                assert report["components"]["slack:http"]["detail"].startswith("http listener answering")


def test_a_connection_fails_health_only_after_the_grace_period() -> None:
    now = [100.0]
    connections = PlatformConnections(clock=lambda: now[0])
    health = Health({})
    health.watch(connections, grace=60)
    connections.expect("discord:shard-0")
    connections.up("slack:socket")

    def report() -> Any:
        return asyncio.run(health.report())

    assert report().ok, "connecting, within the grace period"
    now[0] += 61
    failed = report()
    assert not failed.ok and failed.components["discord:shard-0"]["ok"] is False
    assert failed.components["slack:socket"] == {
        "ok": True,
        "detail": "connected (61s)",
        "connected": True,
        "since_s": 61.0,
    }
    connections.up("discord:shard-0", "identified")
    now[0] += 5
    connections.down("discord:shard-0", "lost")
    now[0] += 30
    connections.down("discord:shard-0", "still lost")  # an outage keeps the time it began
    now[0] += 31
    assert not report().ok
    connections.up("discord:shard-0", "resumed")
    assert report().ok
    connections.forget("discord:")
    assert set(report().components) == {"slack:socket"}


@pytest.fixture(autouse=True)
def _quiet_sdk_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The SDKs log every failed reconnect at ERROR: expected here."""
    caplog.set_level("CRITICAL", logger="discord")


async def test_slack_http_listener_down_while_running_turns_healthz_503_then_recovers(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    """The events listener stops answering while `membot run` goes on (/healthz on its own port): 503 naming
    ``slack:http`` once it has been down longer than the grace period, 200 once its port answers again."""
    async with SlackStandIn() as slack:
        listener_port = free_port()
        settings = slack_settings(
            llm,
            key_prefix,
            data_dir,
            slack,
            SLACK_SIGNING_SECRET="secret",
            SLACK_HTTP_HOST="127.0.0.1",
            SLACK_HTTP_PORT=listener_port,
            MEMBOT_HTTP_HOST="127.0.0.1",
        )
        async with open_app(settings) as app:
            assert app.services is not None
            adapter = build_slack_adapter(app.services)
            async with running(app, adapter) as healthz:
                await until(healthz, 200, "slack:http", connected=True)

                await adapter.stop_accepting()  # type: ignore[attr-defined]  # the listener closes its port
                down_at = time.monotonic()
                report = await until(healthz, 503, "slack:http", connected=False)
                assert time.monotonic() - down_at >= GRACE, "a gap shorter than the grace period stays healthy"
                assert report["status"] == "unhealthy" and healthy_others(report, "slack:http")
                assert "not answering" in report["components"]["slack:http"]["detail"]

                # the port answers again (a listener restarted on it): healthy again, no restart of membot
                async def events(request: web.Request) -> web.Response:
                    return web.Response(text="ok")

                back = web.Application()
                back.router.add_post("/slack/events", events)
                runner = web.AppRunner(back)
                await runner.setup()
                try:
                    await web.TCPSite(runner, "127.0.0.1", listener_port).start()
                    report = await until(healthz, 200, "slack:http", connected=True)
                    assert report["status"] != "unhealthy"
                finally:
                    await runner.cleanup()
