"""A Redis outage on Discord (the real discord.py client against the gateway/REST stand-in, a Redis the test owns):
channel modes fail open, so a message that membot would answer reaches the outage journal, its sender is told once,
and it is answered in its channel when Redis is back; a thread membot was mentioned in during the outage keeps
getting answers afterwards."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from adapters.discord.attachments import IMPORT_FAILED_NOTICE
from bot.runtime.outage import STORE_DOWN_NOTICE
from memory.redis.keys import RedisKeys
from tests.discord.conftest import DiscordHarness, harness, resume_gateway_url  # noqa: F401  (fixtures)
from tests.discord.helpers import MENTION, answer_to, imported, replies_to
from tests.faults.conftest import OwnedRedis
from tests.scenario import eventually
from tests.standins.discord_server import ALICE, BOB, BOT, RANDOM, THREAD

RETRY_SECONDS = 4.0


@pytest.fixture
def discord_settings(owned_redis: OwnedRedis) -> dict[str, Any]:
    return {"REDIS_URL": owned_redis.url, "MEMBOT_REDIS_RETRY_SECONDS": RETRY_SECONDS}


@pytest.mark.redis_aof
async def test_channel_modes_fail_open_and_messages_reach_the_journal(
    harness: DiscordHarness,  # noqa: F811
    owned_redis: OwnedRedis,
) -> None:
    discord_api, services = harness.discord, harness.app.services
    assert services is not None
    await services.channel_modes.set("discord", str(RANDOM), "always")
    before = await discord_api.send_message(BOB, "anyone here?", channel_id=RANDOM)
    [reply] = await answer_to(discord_api, before)
    assert reply.json["content"] == "echo: anyone here?"

    await asyncio.to_thread(owned_redis.stop)
    unmentioned = await discord_api.send_message(BOB, "still there?", channel_id=RANDOM)
    [notice] = await answer_to(discord_api, unmentioned)
    assert notice.json["content"] == STORE_DOWN_NOTICE, "an 'always' channel still answers during the outage"

    started = time.monotonic()
    asked = await discord_api.send_message(ALICE, f"{MENTION} plan friday", channel_id=THREAD, mentions=(BOT,))
    [notice] = await answer_to(discord_api, asked)
    assert notice.json["content"] == STORE_DOWN_NOTICE, "a mention in a thread is journaled, not failed"
    assert time.monotonic() - started < RETRY_SECONDS, "no retry budget spent while the store is known down"
    again = await discord_api.send_message(BOB, "and again", channel_id=RANDOM)

    await asyncio.to_thread(owned_redis.start)
    for message, text in ((unmentioned, "still there?"), (asked, "plan friday"), (again, "and again")):
        await eventually(
            lambda m=message, t=text: any(c.json["content"] == f"echo: {t}" for c in replies_to(discord_api, m)),
            within=60,
            what=f"the answer to {text!r} after the outage",
        )
    assert [c.json["content"] for c in replies_to(discord_api, again)] == ["echo: and again"], "told once per chat"

    follow_up = await discord_api.send_message(BOB, "what about saturday?", channel_id=THREAD)
    [reply] = await answer_to(discord_api, follow_up)
    assert reply.json["content"] == "echo: what about saturday?", "the thread's mode set during the outage holds"
    modes_key = RedisKeys(harness.app.settings.redis_prefix).channel_modes("discord")

    async def written() -> bool:  # by the outage's end (the replay), not by the next read of the channel
        return await harness.app.stores.redis.hget(modes_key, str(THREAD)) in (b"always", "always")

    await eventually(written, what="the thread's mode set during the outage to be written to Redis")


async def test_a_dm_with_a_file_during_an_outage_is_told_and_answered_when_redis_returns(
    harness: DiscordHarness,  # noqa: F811
    owned_redis: OwnedRedis,
) -> None:
    discord_api = harness.discord
    await asyncio.to_thread(owned_redis.stop)
    notes = discord_api.attachment("notes.md", b"# Trip\nLeave at 7.", "text/markdown")
    sent = await discord_api.send_message(ALICE, "packing list ready?", attachments=(notes,))
    failed = await imported(discord_api, sent)
    assert failed == IMPORT_FAILED_NOTICE.format(name="notes.md"), "the file could not be imported: said so"
    _, second = await answer_to(discord_api, sent, count=2)
    assert second.json["content"] == STORE_DOWN_NOTICE, "the text still reached the journal"

    await asyncio.to_thread(owned_redis.start)
    await eventually(
        lambda: [c.json["content"] for c in replies_to(discord_api, sent)][-1:] == ["echo: packing list ready?"],
        within=60,
        what="the DM's answer after the outage",
    )
