"""``/memory timezone [zone]`` on Slack: shows or sets the time zone of the caller's reminders and quiet hours."""

from __future__ import annotations

from bot.ops.reminders import ReminderBook
from bot.stores import heartbeat_job_store
from tests.slack.conftest import ANN, BOB
from tests.slack.harness import SlackHarness


async def answer(slack: SlackHarness, text: str) -> dict:
    reply, response_url = await slack.command(ANN, text)
    assert reply.status == 200
    await slack.settle()
    [found] = slack.responses(response_url)
    assert found["response_type"] == "ephemeral"
    return found


async def test_memory_timezone_shows_the_default_sets_a_zone_and_refuses_an_unknown_one(slack: SlackHarness) -> None:
    book = ReminderBook(heartbeat_job_store(slack.app.settings), slack.app.stores.activity, "UTC")
    default = (await answer(slack, "timezone"))["text"]
    assert default.startswith("Your time zone is UTC (")
    assert "the default); reminders and quiet hours use it." in default
    assert "Set yours with e.g. `/memory timezone Europe/Berlin`." in default

    done = (await answer(slack, "timezone Europe/Berlin"))["text"]
    assert done.startswith("Your time zone is now Europe/Berlin (") and "the default" not in done
    assert await book.timezone(slack.agent(ANN)) == "Europe/Berlin", "reminders use it"
    assert not (await slack.app.services.proactive.policy(slack.agent(ANN))).enabled, "proactive stays off"
    assert await book.timezone(slack.agent(BOB)) == "UTC", "only the caller's"

    error = (await answer(slack, "timezone Mars/Olympus"))["text"]
    assert error == "Sorry, unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Berlin."
    usage = (await answer(slack, "timezone Europe Berlin"))["text"]
    assert usage.startswith("Usage: `/memory timezone`")
    assert await book.timezone(slack.agent(ANN)) == "Europe/Berlin", "nothing changed"
    assert "/memory timezone [zone]" in (await answer(slack, "help"))["text"]
