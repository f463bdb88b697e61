"""Channel control on Discord: off, mention (the default), always and listen per channel, set by admins; allowlists
of channels and people; the admin command group hidden from members without Manage Server."""

from __future__ import annotations

import pytest

from bot.admin.memory import UnknownAgent
from bot.core.events import AgentKey, Scope
from bot.runtime.channels import NOT_ALLOWED_NOTICE, SWITCHED_OFF_NOTICE
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import MENTION, answer_to, model_saw, replies_to, sentinel
from tests.standins.discord_server import ALICE, BOB, BOT, GENERAL, GUILD_ID, MANAGE_GUILD, RANDOM, DiscordStandIn


async def set_mode(discord_api: DiscordStandIn, mode: str, channel_id: int) -> str:
    command = await discord_api.slash(ALICE, f"membot channel {mode}", permissions=MANAGE_GUILD, channel_id=channel_id)
    [ack] = await discord_api.wait_for(discord_api.callbacks_for(command))
    return str(ack.json["data"]["content"])


async def test_listen_remembers_every_message_and_answers_only_when_addressed(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    assert "read and remember" in await set_mode(discord_api, "listen", RANDOM)
    overheard = await discord_api.send_message(BOB, "the release is on the 14th", channel_id=RANDOM)
    await sentinel(harness)
    assert replies_to(discord_api, overheard) == [] and not model_saw(harness, "release is on the 14th")
    bob = AgentKey("discord", str(GUILD_ID), str(BOB["id"]))
    found = await harness.app.admin.search(bob, "when is the release", Scope.PUBLIC)
    assert any(hit.text == "the release is on the 14th" for hit in found), "kept in Bob's recall, public"
    asked = await discord_api.send_message(BOB, f"{MENTION} what did I say?", channel_id=RANDOM, mentions=(BOT,))
    [reply] = await answer_to(discord_api, asked)
    assert reply.json["content"].startswith("echo:")
    again = await discord_api.send_message(BOB, "the release is on the 14th", channel_id=RANDOM)  # a new message
    await sentinel(harness)
    assert replies_to(discord_api, again) == []


async def test_off_ignores_the_channel_and_tells_a_mention_once_a_day(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    assert "stay out" in await set_mode(discord_api, "off", RANDOM)
    chatter = await discord_api.send_message(BOB, "anyone here?", channel_id=RANDOM)
    first = await discord_api.send_message(BOB, f"{MENTION} hello?", channel_id=RANDOM, mentions=(BOT,))
    [notice] = await answer_to(discord_api, first)
    assert notice.json["content"] == SWITCHED_OFF_NOTICE
    second = await discord_api.send_message(BOB, f"{MENTION} hello again?", channel_id=RANDOM, mentions=(BOT,))
    await sentinel(harness)
    assert replies_to(discord_api, second) == [] and replies_to(discord_api, chatter) == []
    assert not model_saw(harness, "hello?") and not model_saw(harness, "anyone here?")
    bob = AgentKey("discord", str(GUILD_ID), str(BOB["id"]))
    with pytest.raises(UnknownAgent):  # nothing of Bob's was read or stored in this server
        await harness.app.admin.search(bob, "anyone here", Scope.PUBLIC)
    elsewhere = await discord_api.send_message(BOB, f"{MENTION} and here?", channel_id=GENERAL, mentions=(BOT,))
    [reply] = await answer_to(discord_api, elsewhere)
    assert reply.json["content"] == "echo: and here?", "other channels are not affected"


@pytest.mark.parametrize("discord_settings", [{"MEMBOT_ALLOWED_USERS": str(ALICE["id"])}])
async def test_only_allowed_people_are_answered_and_the_others_told_once(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    alice = await discord_api.send_message(ALICE, "hi from alice")
    [reply] = await answer_to(discord_api, alice)
    assert reply.json["content"] == "echo: hi from alice"
    bob = await discord_api.send_message(BOB, "hi from bob")
    [notice] = await answer_to(discord_api, bob)
    assert notice.json["content"] == NOT_ALLOWED_NOTICE
    bob_again = await discord_api.send_message(BOB, f"{MENTION} please?", channel_id=GENERAL, mentions=(BOT,))
    done = await discord_api.send_message(ALICE, "sentinel from alice")
    await answer_to(discord_api, done)
    assert replies_to(discord_api, bob_again) == [], "told once a day, not for every message"
    assert not model_saw(harness, "hi from bob")


@pytest.mark.parametrize("discord_settings", [{"MEMBOT_ALLOWED_CHANNELS": str(GENERAL)}])
async def test_only_allowed_channels_are_served_dms_still_are(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    outside = await discord_api.send_message(BOB, f"{MENTION} over here", channel_id=RANDOM, mentions=(BOT,))
    [notice] = await answer_to(discord_api, outside)
    assert notice.json["content"] == NOT_ALLOWED_NOTICE
    inside = await discord_api.send_message(BOB, f"{MENTION} in general", channel_id=GENERAL, mentions=(BOT,))
    [reply] = await answer_to(discord_api, inside)
    assert reply.json["content"] == "echo: in general"
    await sentinel(harness)  # a DM from Bob is answered


async def test_the_admin_group_is_hidden_from_members_without_manage_server(harness: DiscordHarness) -> None:
    [admin] = [c for c in harness.discord.commands if c["name"] == "membot"]
    assert int(admin["default_member_permissions"]) == MANAGE_GUILD  # Discord's API takes it as a string or number
    [member] = [c for c in harness.discord.commands if c["name"] == "memory"]
    assert member["default_member_permissions"] is None
    options = {o["name"]: o for o in admin["options"]}
    assert {o["name"] for o in options["channel"]["options"]} == {"off", "mention", "always", "listen"}
