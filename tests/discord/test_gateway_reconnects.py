"""Every way Discord's gateway sends a client away ends with membot back on the configured gateway (the stand-in
behind DISCORD_API_BASE_URL), identified or resumed, answering DMs.

There is no route to Discord's public gateway from the tests: a client that wandered off to wss://gateway.discord.gg
would never come back to the stand-in, so "a new IDENTIFY or RESUME arrived here and a DM is answered" is the proof.
Waits are on conditions; an INVALID_SESSION with ``d: false`` costs the 1–5 s Discord asks a client to wait.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.discord import build_discord_adapter
from adapters.discord.client import shard_connection
from adapters.discord.gateway import GatewayPin, IdentifySpacing
from bot.app import open_app
from bot.settings import ConfigError
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import MENTION, answer_to
from tests.scenario import eventually, settings_for
from tests.standins.discord_server import ALICE, BOT, GENERAL, DiscordStandIn
from tests.standins.llm_server import ScriptedLLMServer

FOREIGN_RESUME_URL = "wss://gateway-us-east1-b.discord.gg"


@pytest.fixture
def resume_gateway_url() -> str | None:
    """READY names Discord's regional resume URL, as a proxy relaying Discord's own READY would."""
    return FOREIGN_RESUME_URL


async def answers_a_dm(discord_api: DiscordStandIn, text: str) -> None:
    sent = await discord_api.send_message(ALICE, text)
    [reply] = await answer_to(discord_api, sent)
    assert reply.json["content"] == f"echo: {text}"


async def connected_again(harness: DiscordHarness, shard: int = 0) -> None:
    """The shard is open on the stand-in and membot reports it connected."""
    discord_api, connections = harness.discord, harness.app.services.connections
    await eventually(
        lambda: shard in discord_api.open_shards() and connections.states()[shard_connection(shard)].up,
        what=f"shard {shard} back on the stand-in",
    )


@pytest.mark.parametrize("resume_gateway_url", [None, "/gateway-ws/resume", FOREIGN_RESUME_URL])
async def test_op7_reconnect_resumes_on_the_configured_gateway(
    harness: DiscordHarness, resume_gateway_url: str | None
) -> None:
    """A resume URL on the configured gateway's host is followed (any path); one elsewhere is not."""
    discord_api = harness.discord
    await discord_api.send_message(ALICE, "before")  # a sequence number to resume from
    await discord_api.request_reconnect()
    await eventually(lambda: len(discord_api.resumes) == 1, what="a RESUME")
    await connected_again(harness)
    assert discord_api.resumes[0]["session_id"] == "session-1" and len(discord_api.identifies) == 1
    expected = "/gateway-ws/resume" if resume_gateway_url == "/gateway-ws/resume" else "/gateway-ws"
    assert discord_api.ws_paths[-1] == expected
    assert discord_api.ws_queries[-1]["v"] == "10" and discord_api.ws_queries[-1]["encoding"] == "json"
    await answers_a_dm(discord_api, "after a reconnect")


async def test_invalid_session_resumable_resumes_the_same_session(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    await discord_api.invalid_session(resumable=True)
    await eventually(lambda: len(discord_api.resumes) == 1, what="a RESUME")
    await connected_again(harness)
    assert discord_api.resumes[0]["session_id"] == "session-1" and len(discord_api.identifies) == 1
    await answers_a_dm(discord_api, "after a resumable invalid session")


async def test_invalid_session_not_resumable_identifies_again_after_a_pause(harness: DiscordHarness) -> None:
    """The bug of issue #12: discord.py reset its gateway to Discord's public one and never identified again."""
    discord_api = harness.discord
    await discord_api.invalid_session(resumable=False)
    await eventually(lambda: len(discord_api.identifies) == 2, what="a second IDENTIFY on the stand-in")
    await connected_again(harness)
    assert 1.0 <= discord_api.identify_delay_after_invalid_session() < 6.0, "Discord asks for a 1-5 s pause"
    assert discord_api.resumes == []
    await answers_a_dm(discord_api, "after a new session")


@pytest.mark.parametrize("code", [4000, 4001, 4008])
async def test_a_resumable_close_code_resumes(harness: DiscordHarness, code: int) -> None:
    discord_api = harness.discord
    await discord_api.close_gateway(code)
    await eventually(lambda: len(discord_api.resumes) == 1, what="a RESUME")
    await connected_again(harness)
    assert len(discord_api.identifies) == 1
    await answers_a_dm(discord_api, f"after close {code}")


@pytest.mark.parametrize("code", [4007, 4009])
async def test_a_session_ending_close_code_starts_a_new_session(harness: DiscordHarness, code: int) -> None:
    """discord.py tries to resume first; the gateway refuses (INVALID_SESSION false), so it identifies anew."""
    discord_api = harness.discord
    await discord_api.close_gateway(code)
    await eventually(lambda: len(discord_api.identifies) == 2, what="a new session on the stand-in")
    await connected_again(harness)
    assert 1.0 <= discord_api.identify_delay_after_invalid_session() < 6.0
    await answers_a_dm(discord_api, f"after close {code}")


async def test_authentication_failed_is_not_retried(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    """4004 (like 4010-4014) means "do not reconnect": the adapter stops with the reason instead of looping, so
    `membot run` exits and says why."""
    async with DiscordStandIn() as discord_api:
        settings = settings_for(
            llm, "openai", key_prefix, data_dir, DISCORD_TOKEN="test-token", DISCORD_API_BASE_URL=discord_api.base_url
        )
        async with open_app(settings) as app:
            assert app.services is not None
            task = asyncio.create_task(build_discord_adapter(app.services).run())
            await asyncio.wait_for(discord_api.ready.wait(), timeout=15)
            await discord_api.close_gateway(4004)
            with pytest.raises(ConfigError, match="rejected DISCORD_TOKEN"):
                await asyncio.wait_for(task, timeout=15)
    assert len(discord_api.ws_paths) == 1 and len(discord_api.identifies) == 1


@pytest.mark.parametrize("discord_settings", [{"DISCORD_SHARD_COUNT": 2}])
async def test_each_shard_reconnects_on_the_configured_gateway(harness: DiscordHarness) -> None:
    """A fixed shard count used to send discord.py to Discord's default gateway: both shards stay here."""
    discord_api = harness.discord
    await eventually(lambda: discord_api.open_shards() == [0, 1], what="both shards identified")
    assert sorted(tuple(i["shard"]) for i in discord_api.identifies) == [(0, 2), (1, 2)]

    await discord_api.invalid_session(resumable=False, shard=1)
    await eventually(lambda: len(discord_api.identifies) == 3, what="shard 1 to identify again")
    assert discord_api.identifies[-1]["shard"] == [1, 2]
    await connected_again(harness, shard=1)

    await discord_api.request_reconnect(shard=0)
    await eventually(lambda: len(discord_api.resumes) == 1, what="shard 0 to resume")
    await connected_again(harness, shard=0)
    assert discord_api.open_shards() == [0, 1]
    await answers_a_dm(discord_api, "DMs come on shard 0")
    sent = await discord_api.send_message(ALICE, f"{MENTION} hi", channel_id=GENERAL, mentions=(BOT,))
    [reply] = await answer_to(discord_api, sent)  # the server's events come on its shard
    assert reply.json["content"] == "echo: hi"


def test_the_pin_keeps_sockets_on_the_configured_gateway_origin() -> None:
    pin = GatewayPin()
    query = "?v=10&encoding=json&compress=zlib-stream"
    assert pin.pinned("wss://gateway.discord.gg/" + query) == "wss://gateway.discord.gg/" + query, "not configured"
    pin.configure("ws://127.0.0.1:9000/gateway-ws")
    assert pin.pinned("wss://gateway.discord.gg/" + query) == "ws://127.0.0.1:9000/gateway-ws" + query
    assert pin.pinned("ws://127.0.0.1:9000/resume/abc" + query) == "ws://127.0.0.1:9000/resume/abc" + query
    assert pin.pinned("ws://127.0.0.1:9001/gateway-ws" + query) == "ws://127.0.0.1:9000/gateway-ws" + query
    pin.configure("wss://gateway.discord.gg")  # a REST-only proxy: Discord's regional resume URLs are followed
    assert pin.pinned("wss://gateway-us-east1-b.discord.gg" + query) == "wss://gateway-us-east1-b.discord.gg" + query


def test_reidentify_waits_one_to_five_seconds_and_five_since_the_last_identify() -> None:
    now = [0.0]
    spacing = IdentifySpacing(clock=lambda: now[0])
    assert spacing.delay(initial=True) == 0.0
    assert all(1.0 <= spacing.delay(initial=False) <= 5.0 for _ in range(50)), "no IDENTIFY yet: only the jitter"
    asyncio.run(spacing.wait(initial=True))  # the first IDENTIFY, at 0
    now[0] = 0.5
    assert all(4.5 <= spacing.delay(initial=False) <= 5.0 for _ in range(50))
    now[0] = 60.0
    assert all(1.0 <= spacing.delay(initial=False) <= 5.0 for _ in range(50))
