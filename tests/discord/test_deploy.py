"""Discord in a deployment: a process connects only its share of the shards, and a graceful stop closes the
gateway (no new events) while the turn in flight still answers over REST."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import answer_to
from tests.scenario import eventually
from tests.standins.discord_server import ALICE
from tests.standins.llm_server import ScriptedReply


@pytest.mark.parametrize("discord_settings", [{"DISCORD_SHARD_COUNT": 3, "DISCORD_SHARD_IDS": "2"}])
async def test_a_process_identifies_only_its_shards(harness: DiscordHarness, discord_settings: dict[str, Any]) -> None:
    # the stand-in recommends 1 shard: the count and the ids come from the settings
    assert [identify["shard"] for identify in harness.discord.identifies] == [[2, 3]]


async def test_stop_accepting_closes_the_gateway_but_the_turn_in_flight_still_answers(harness: DiscordHarness) -> None:
    release = threading.Event()
    harness.llm.push(ScriptedReply(tool_calls=[("send_message", {"message": "answered while stopping"})], hold=release))
    try:
        sent = await harness.discord.send_message(ALICE, "a question just before the stop")
        await eventually(lambda: harness.llm.in_flight == 1, what="the turn to reach the model")
        await harness.adapter.stop_accepting()
        assert all(shard.is_closed() for shard in harness.adapter.client.shards.values())
        assert harness.app.turns.in_flight == 1
        release.set()
        await harness.app.turns.wait_idle()
        [reply] = await answer_to(harness.discord, sent)
    finally:
        release.set()
    assert reply.json["content"] == "answered while stopping"
