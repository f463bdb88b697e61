"""``/memory timezone [zone]`` on Discord: shows or sets the time zone of the caller's reminders and quiet hours."""

from __future__ import annotations

from bot.ops.reminders import ReminderBook
from bot.stores import heartbeat_job_store
from tests.discord.conftest import DiscordHarness
from tests.discord.test_commands import ALICE_HERE, BOB_HERE, flags_of, responses, text_of
from tests.standins.discord_server import ALICE, EPHEMERAL


async def test_memory_timezone_shows_the_default_sets_a_zone_and_refuses_an_unknown_one(
    harness: DiscordHarness,
) -> None:
    discord_api = harness.discord
    shown = await discord_api.slash(ALICE, "memory timezone")
    _, default = await responses(discord_api, shown, 2)
    assert flags_of(default) & EPHEMERAL
    assert text_of(default).startswith("Your time zone here is UTC (")
    assert "the default); reminders and quiet hours use it." in text_of(default)
    assert "/memory timezone zone:Europe/Berlin" in text_of(default)

    set_ = await discord_api.slash(ALICE, "memory timezone", zone="Europe/Berlin")
    _, done = await responses(discord_api, set_, 2)
    assert flags_of(done) & EPHEMERAL
    assert text_of(done).startswith("Your time zone here is now Europe/Berlin (")
    assert text_of(done).endswith(" there now); reminders and quiet hours use it.")
    book = ReminderBook(heartbeat_job_store(harness.app.settings), harness.app.stores.activity, "UTC")
    assert await book.timezone(ALICE_HERE) == "Europe/Berlin", "reminders use it"
    control = harness.app.services.proactive
    policy = await control.policy(ALICE_HERE)
    assert policy.timezone == "Europe/Berlin" and not policy.enabled, "proactive messages stay as they were"
    assert await book.timezone(BOB_HERE) == "UTC", "only the caller's"

    refused = await discord_api.slash(ALICE, "memory timezone", zone="Berlin")
    _, error = await responses(discord_api, refused, 2)
    assert flags_of(error) & EPHEMERAL
    assert text_of(error) == "Sorry, unknown time zone 'Berlin': use an IANA name such as Europe/Berlin."
    assert await book.timezone(ALICE_HERE) == "Europe/Berlin", "an invalid zone changes nothing"
