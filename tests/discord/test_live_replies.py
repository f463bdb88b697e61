"""Live replies on Discord: a long answer is sent once, edited about every 1.2 s as the model writes it, continued in
a new message past 2,000 characters, and ends exactly as the plain delivery (the real discord.py client against the
Discord stand-in, the scripted model streaming over SSE)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from adapters.discord.split import split_message
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import sentinel
from tests.standins.brain import LONG_ANSWER, Brain
from tests.standins.discord_server import ALICE, DiscordStandIn, Payload
from tests.standins.llm_server import ScriptedReply, StreamPlan

PLAIN = split_message(LONG_ANSWER)  # what a reply sent at once posts: three messages, code fences intact
SLOW = StreamPlan(chunk=20, delay=0.012)  # LONG_ANSWER takes about 3.5 s to arrive


async def settled(discord_api: DiscordStandIn, channel_id: int | str, expected: list[str], within: float = 20) -> None:
    """Wait until the bot's messages in the channel read ``expected``."""
    deadline = time.monotonic() + within
    while [m["content"] for m in discord_api.channel_messages(channel_id)] != expected:
        if time.monotonic() > deadline:
            got = [m["content"][:60] for m in discord_api.channel_messages(channel_id)]
            raise AssertionError(f"messages never became the plain delivery: {got}")
        await asyncio.sleep(0.05)


def posts(discord_api: DiscordStandIn, channel_id: int | str) -> list[Any]:
    return discord_api.matching(discord_api.created_in(channel_id))


async def test_a_long_answer_is_sent_then_edited_and_ends_as_the_plain_delivery(
    harness: DiscordHarness, brain: Brain
) -> None:
    discord_api = harness.discord
    brain.stream = SLOW
    sent: Payload = await discord_api.send_message(ALICE, "long answer please")
    channel = sent["channel_id"]
    await settled(discord_api, channel, PLAIN)
    await sentinel(harness)

    assert harness.llm.streamed >= 1
    created = posts(discord_api, channel)
    assert len(created) == len(PLAIN) == 3  # one message per part: parts are edited, never re-sent
    first = created[0]
    assert str(first.json["message_reference"]["message_id"]) == sent["id"]  # the first part answers the question
    assert all("message_reference" not in c.json for c in created[1:])
    assert first.json["content"] != PLAIN[0] and PLAIN[0].startswith(first.json["content"][:40])
    edits = discord_api.edits()
    assert edits and all(len(e.json["content"]) <= 2000 for e in edits)
    first_id = first.response["id"]
    growing = [e for e in edits if e.path.endswith(f"/messages/{first_id}")][:-1]
    gaps = [b.at - a.at for a, b in itertools.pairwise(growing)]
    assert all(gap >= 1.1 for gap in gaps), gaps
    assert all(e.json["allowed_mentions"]["parse"] == [] for e in edits)  # edits never ping anyone
    assert not discord_api.matching(lambda c: c.method == "DELETE")


@pytest.mark.parametrize("discord_settings", [{"MEMBOT_STREAM": "off"}])
async def test_without_streaming_the_answer_is_sent_at_once(harness: DiscordHarness, brain: Brain) -> None:
    discord_api = harness.discord
    brain.stream = SLOW
    sent = await discord_api.send_message(ALICE, "long answer please")
    await settled(discord_api, sent["channel_id"], PLAIN)
    await sentinel(harness)

    assert harness.llm.streamed == 0 and not discord_api.edits()
    assert [c.json["content"] for c in posts(discord_api, sent["channel_id"])] == PLAIN


async def test_a_rate_limited_edit_is_waited_out(harness: DiscordHarness, brain: Brain) -> None:
    discord_api = harness.discord
    brain.stream = SLOW
    discord_api.ratelimit("PATCH", retry_after=0.3, times=2)
    sent = await discord_api.send_message(ALICE, "long answer please")
    await settled(discord_api, sent["channel_id"], PLAIN)
    await sentinel(harness)
    assert len(posts(discord_api, sent["channel_id"])) == 3


async def test_a_cut_stream_is_replaced_by_the_retried_answer(harness: DiscordHarness, brain: Brain) -> None:
    discord_api = harness.discord
    brain.stream = SLOW
    draft = "An earlier draft, longer than one message. " * 80
    harness.llm.push(
        ScriptedReply(tool_calls=[("send_message", {"message": draft})], stream=StreamPlan(20, 0.01, cut_after=170))
    )
    sent = await discord_api.send_message(ALICE, "long answer please")
    await settled(discord_api, sent["channel_id"], PLAIN)
    await sentinel(harness)

    shown = [c.json["content"] for c in posts(discord_api, sent["channel_id"])]
    assert "An earlier draft" in shown[0]  # the first attempt was shown, then edited into the retried answer


async def test_a_rejected_reply_preview_is_corrected_by_the_next_reply(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    rejected = {"message": LONG_ANSWER[:4000], "mood": "chatty"}  # an unknown argument: the call fails
    harness.llm.push(ScriptedReply(tool_calls=[("send_message", rejected)], stream=StreamPlan(20, 0.01)))
    sent = await discord_api.send_message(ALICE, "hello")
    channel = sent["channel_id"]
    deadline = time.monotonic() + 20
    while not [m for m in discord_api.channel_messages(channel) if m["content"].startswith("That failed: ")]:
        assert time.monotonic() < deadline, discord_api.summary()
        await asyncio.sleep(0.05)

    shown = [c.json["content"] for c in posts(discord_api, channel)]
    assert LONG_ANSWER[:30] in shown[0]  # the rejected reply was shown while written...
    [message] = discord_api.channel_messages(channel)  # ...then the next reply took its place
    assert LONG_ANSWER[:30] not in message["content"]


async def test_a_message_deleted_meanwhile_is_sent_again_in_full(harness: DiscordHarness, brain: Brain) -> None:
    discord_api = harness.discord
    brain.stream = SLOW
    sent = await discord_api.send_message(ALICE, "long answer please")
    channel = sent["channel_id"]
    [first] = await discord_api.wait_for(discord_api.created_in(channel))
    del discord_api.messages[int(first.response["id"])]  # a moderator removed the growing message
    await settled(discord_api, channel, PLAIN)  # every part, whole and in order
    await sentinel(harness)
    assert any(e.response == {"message": "Unknown Message", "code": 10008} for e in discord_api.edits())
