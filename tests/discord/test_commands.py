"""Slash commands through the real discord.py client: private answers, permissions, confirm buttons, export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.admin.memory import UnknownAgent
from bot.core.events import AgentKey, Scope
from bot.ops.reminders import ReminderBook
from bot.stores import heartbeat_job_store
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import MENTION, answer_to
from tests.scenario import eventually
from tests.standins.discord_server import (
    ALICE,
    BOB,
    BOT,
    EPHEMERAL,
    GENERAL,
    GUILD_ID,
    MANAGE_GUILD,
    DiscordStandIn,
    Payload,
    RestCall,
)

ALICE_HERE = AgentKey("discord", str(GUILD_ID), ALICE["id"])
BOB_HERE = AgentKey("discord", str(GUILD_ID), BOB["id"])


async def introduce(harness: DiscordHarness, who: Payload, name: str) -> None:
    """``who`` tells membot their name in #general, so their server agent has core memory; returns once both
    messages are indexed (a count read while the indexer is between its upsert and its acknowledgement counts a
    message twice, for a moment)."""
    sent = await harness.discord.send_message(who, f"{MENTION} my name is {name}", channel_id=GENERAL, mentions=(BOT,))
    await answer_to(harness.discord, sent)
    outbox = harness.app.stores.outbox

    async def indexed() -> bool:
        return await outbox.waiting() == 0

    await eventually(indexed, what="the conversation to be indexed")


async def responses(discord_api: DiscordStandIn, interaction: Payload, count: int) -> list[RestCall]:
    return await discord_api.wait_for(discord_api.callbacks_for(interaction), count=count)


def text_of(call: RestCall) -> str:
    body = call.json or {}
    return str(body.get("data", body).get("content") or "")


def flags_of(call: RestCall) -> int:
    body = call.json or {}
    return int(body.get("data", body).get("flags") or 0)


async def test_memory_show_is_private_and_shows_only_the_callers_memory(harness: DiscordHarness) -> None:
    await introduce(harness, ALICE, "Alice")
    await introduce(harness, BOB, "Bob")
    command = await harness.discord.slash(ALICE, "memory show")
    defer, shown = await responses(harness.discord, command, 2)
    assert defer.path.endswith("/callback") and defer.json["type"] == 5, "acknowledged at once (thinking)"
    assert flags_of(defer) & EPHEMERAL and flags_of(shown) & EPHEMERAL, "only the caller sees it"
    assert shown.path.startswith(f"/webhooks/{BOT['id']}/")
    text = text_of(shown)
    assert f"`{ALICE_HERE}`" in text and "Name: Alice" in text
    assert "Bob" not in text
    assert "Conversation history: 2 messages" in text


async def test_memory_show_before_any_conversation_says_so_politely(harness: DiscordHarness) -> None:
    command = await harness.discord.slash(BOB, "memory show", guild=False)
    _, shown = await responses(harness.discord, command, 2)
    assert text_of(shown) == "I don't remember anything about you here yet."
    assert flags_of(shown) & EPHEMERAL


async def test_memory_search_answers_privately(harness: DiscordHarness) -> None:
    await introduce(harness, ALICE, "Alice")
    command = await harness.discord.slash(ALICE, "memory search", query="name")
    _, found = await responses(harness.discord, command, 2)
    assert flags_of(found) & EPHEMERAL
    assert text_of(found).startswith("**Memory matching “name”**") and "my name is Alice" in text_of(found)


async def test_an_admin_command_from_a_non_admin_is_refused(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    await introduce(harness, ALICE, "Alice")
    for command in (
        await discord_api.slash(BOB, "membot channel always"),
        await discord_api.slash(BOB, "membot user show", member=ALICE),
        await discord_api.slash(BOB, "membot user reset", member=ALICE),
    ):
        [refusal] = await responses(discord_api, command, 1)
        assert refusal.json["type"] == 4 and flags_of(refusal) & EPHEMERAL
        assert text_of(refusal) == "Sorry, only server admins (or membot's configured admins) can do that."
    assert harness.app.services is not None
    assert await harness.app.services.channel_modes.get("discord", str(GENERAL)) == "mention"
    assert (await harness.app.admin.show(ALICE_HERE)).recall_count == 2, "nothing was erased"


async def test_manage_server_lets_an_admin_see_a_members_memory(harness: DiscordHarness) -> None:
    await introduce(harness, ALICE, "Alice")
    command = await harness.discord.slash(BOB, "membot user show", member=ALICE, permissions=MANAGE_GUILD)
    _, shown = await responses(harness.discord, command, 2)
    assert flags_of(shown) & EPHEMERAL
    assert "**Alice's memory**" in text_of(shown) and "Name: Alice" in text_of(shown)


@pytest.mark.parametrize("discord_settings", [{"MEMBOT_ADMIN_IDS": BOB["id"]}])
async def test_configured_admin_ids_may_use_admin_commands_without_manage_server(harness: DiscordHarness) -> None:
    command = await harness.discord.slash(BOB, "membot channel always")
    [ack] = await responses(harness.discord, command, 1)
    assert "every message" in text_of(ack)
    assert harness.app.services is not None
    assert await harness.app.services.channel_modes.get("discord", str(GENERAL)) == "always"


async def test_reset_erases_nothing_until_the_button_is_pressed(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    await introduce(harness, ALICE, "Alice")
    command = await discord_api.slash(ALICE, "memory reset")
    _, question = await responses(discord_api, command, 2)
    assert "Erase everything I remember about you here?" in text_of(question)
    assert flags_of(question) & EPHEMERAL
    assert (await harness.app.admin.show(ALICE_HERE)).recall_count == 2, "nothing erased before the button"

    stranger = await discord_api.press(BOB, question.response, "Erase everything")
    [refusal] = await responses(discord_api, stranger, 1)
    assert text_of(refusal) == "These buttons belong to someone else's command." and flags_of(refusal) & EPHEMERAL
    assert (await harness.app.admin.show(ALICE_HERE)).recall_count == 2

    press = await discord_api.press(ALICE, question.response, "Erase everything")
    ack, done = await responses(discord_api, press, 2)
    assert ack.json["type"] == 6, "the button press is acknowledged at once"
    assert done.method == "PATCH" and done.path.endswith("/messages/@original")
    assert text_of(done).startswith("Done: erased") and done.json["components"] == []
    with pytest.raises(UnknownAgent):
        await harness.app.admin.show(ALICE_HERE)


async def test_forget_can_be_cancelled_and_then_confirmed(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    await introduce(harness, ALICE, "Alice")
    command = await discord_api.slash(ALICE, "memory forget", query="Alice")
    _, question = await responses(discord_api, command, 2)
    assert text_of(question).startswith("**Forget “Alice”?**") and "Name: Alice" in text_of(question)
    cancel = await discord_api.press(ALICE, question.response, "Cancel")
    [cancelled] = await responses(discord_api, cancel, 1)
    assert cancelled.json["type"] == 7 and cancelled.json["data"]["content"] == "Cancelled: nothing was erased."
    blocks = {b.label: b.value for b in (await harness.app.admin.show(ALICE_HERE)).blocks}
    assert "Name: Alice" in blocks["human"]

    command = await discord_api.slash(ALICE, "memory forget", query="Alice")
    _, question = await responses(discord_api, command, 2)
    press = await discord_api.press(ALICE, question.response, "Forget them")
    _, done = await responses(discord_api, press, 2)
    assert text_of(done).startswith("Done: forgot")
    blocks = {b.label: b.value for b in (await harness.app.admin.show(ALICE_HERE)).blocks}
    assert "Name: Alice" not in blocks["human"]


async def test_export_is_a_json_file_sent_in_a_dm(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    await introduce(harness, ALICE, "Alice")
    command = await discord_api.slash(ALICE, "memory export")
    [open_dm] = await discord_api.wait_for(lambda c: c.method == "POST" and c.path == "/users/@me/channels")
    assert open_dm.json == {"recipient_id": int(ALICE["id"])}
    [upload] = await discord_api.wait_for(discord_api.created_in(discord_api.dm_channel_id(ALICE)))
    [(filename, data)] = upload.files
    assert filename == f"membot-memory-discord-{GUILD_ID}-{ALICE['id']}.json"
    document = json.loads(data)
    assert document["agent"] == str(ALICE_HERE) and document["format"] == "membot-export/1"
    assert any("Name: Alice" in json.dumps(item) for item in document["core"])
    _, note = await responses(discord_api, command, 2)
    assert text_of(note).startswith("I sent your memory export") and flags_of(note) & EPHEMERAL


async def test_an_interaction_delivered_twice_is_answered_once(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    command = await discord_api.slash(ALICE, "membot channel mention", permissions=MANAGE_GUILD)
    await discord_api.dispatch("INTERACTION_CREATE", command)
    await responses(discord_api, command, 1)
    later = await discord_api.slash(ALICE, "memory show")
    await responses(discord_api, later, 2)
    assert len(discord_api.matching(discord_api.callbacks_for(command))) == 1


async def test_memory_proactive_is_opt_in_per_user_and_answers_privately(harness: DiscordHarness) -> None:
    control = harness.app.services.proactive
    assert control is not None and not (await control.policy(ALICE_HERE)).enabled, "off until the user opts in"
    command = await harness.discord.slash(
        ALICE, "memory proactive", setting="on", quiet_hours="23-07", timezone="Europe/Berlin"
    )
    _, done = await responses(harness.discord, command, 2)
    assert flags_of(done) & EPHEMERAL
    assert (
        text_of(done)
        == "Proactive messages for you here: on: at most 2 per day, quiet hours 23:00-07:00 (Europe/Berlin)."
    )
    policy = await control.policy(ALICE_HERE)
    assert policy.enabled and str(policy.quiet_hours) == "23:00-07:00" and policy.timezone == "Europe/Berlin"
    assert not (await control.policy(BOB_HERE)).enabled, "only the caller's choice changed"

    refused = await harness.discord.slash(ALICE, "memory proactive", setting="off", timezone="Mars/Olympus")
    _, error = await responses(harness.discord, refused, 2)
    assert flags_of(error) & EPHEMERAL
    assert "unknown time zone 'Mars/Olympus'" in text_of(error)
    assert (await control.policy(ALICE_HERE)).enabled, "an invalid setting changes nothing"

    off = await harness.discord.slash(ALICE, "memory proactive", setting="off")
    _, stopped = await responses(harness.discord, off, 2)
    assert text_of(stopped) == "Proactive messages for you here: off."
    assert not (await control.policy(ALICE_HERE)).enabled


async def test_memory_reminders_lists_this_servers_reminders_and_cancels_one_by_id(harness: DiscordHarness) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None)
    said = f"{MENTION} remind: {later:%Y-%m-%dT%H:%M} Bring the slides."
    await answer_to(
        harness.discord, await harness.discord.send_message(ALICE, said, channel_id=GENERAL, mentions=(BOT,))
    )
    book = ReminderBook(heartbeat_job_store(harness.app.settings), harness.app.stores.activity, "UTC")
    secret = await book.schedule(
        ALICE_HERE, datetime.now(UTC) + timedelta(days=2), "Secret thing.", scope=Scope.PRIVATE
    )
    [public, _] = await harness.app.services.admin.reminders(ALICE_HERE)

    listed = await harness.discord.slash(ALICE, "memory reminders")
    _, shown = await responses(harness.discord, listed, 2)
    assert flags_of(shown) & EPHEMERAL
    assert f"`{public.id}`" in text_of(shown) and "Bring the slides." in text_of(shown)
    assert "Secret thing." not in text_of(shown), "a private reminder is not listed in a server"

    hidden = await harness.discord.slash(ALICE, "memory reminders", cancel=secret.id)
    _, refused = await responses(harness.discord, hidden, 2)
    assert f"no pending reminder `{secret.id}`" in text_of(refused)
    cancel = await harness.discord.slash(ALICE, "memory reminders", cancel=public.id)
    _, done = await responses(harness.discord, cancel, 2)
    assert text_of(done).startswith("Cancelled your reminder for") and "Bring the slides." in text_of(done)
    assert [r.id for r in await harness.app.services.admin.reminders(ALICE_HERE)] == [secret.id]
