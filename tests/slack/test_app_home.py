"""The App Home tab: the user's own memory, counts, and forget/reset that really erase."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.admin.memory import UnknownAgent
from tests.slack.conftest import ANN, BOB
from tests.slack.harness import SlackHarness, all_text, buttons


def home_opened(user: str) -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home", "event_ts": "1.0"}


async def _published(slack: SlackHarness) -> dict[str, Any]:
    await slack.settle()
    return slack.slack.calls_to("views.publish")[-1].params


async def test_app_home_publishes_a_view_with_the_users_own_blocks(slack: SlackHarness) -> None:
    await slack.say_dm(ANN, "my name is Ann")
    await slack.say_dm(BOB, "my name is Bob")
    await slack.send_event(home_opened(ANN))
    published = await _published(slack)
    assert published["user_id"] == ANN
    view = published["view"]
    assert view["type"] == "home"
    shown = all_text(view["blocks"])
    assert "*human*" in shown and "Name: Ann" in shown and "*persona*" in shown
    assert "Name: Bob" not in shown
    assert "Recall memory: 2 messages" in shown and "Archival memory: 0 notes" in shown
    assert set(buttons(view["blocks"])) == {"memory_home_forget", "memory_reset_confirm"}


async def test_app_home_for_a_stranger_and_the_messages_tab(slack: SlackHarness) -> None:
    await slack.send_event({**home_opened(BOB), "tab": "messages"})
    await slack.settle()
    assert slack.slack.calls_to("views.publish") == []
    await slack.send_event(home_opened(BOB))
    view = (await _published(slack))["view"]
    assert "don't remember anything about you yet" in all_text(view) and buttons(view["blocks"]) == {}


async def test_reset_from_the_home_tab_erases_and_refreshes_it(slack: SlackHarness) -> None:
    await slack.say_dm(ANN, "my name is Ann")
    await slack.send_event(home_opened(ANN))
    view = (await _published(slack))["view"]
    reset = buttons(view["blocks"])["memory_reset_confirm"]
    assert reset["confirm"]["title"]["text"] == "Reset memory?"
    await slack.press(ANN, reset, from_home=True)
    refreshed = (await _published(slack))["view"]
    with pytest.raises(UnknownAgent):
        await slack.app.services.admin.show(slack.agent(ANN))
    assert "don't remember anything about you yet" in all_text(refreshed)


async def test_forget_from_the_home_tab_goes_through_a_modal(slack: SlackHarness) -> None:
    await slack.say_dm(ANN, "my name is Ann")
    await slack.send_event(home_opened(ANN))
    view = (await _published(slack))["view"]
    await slack.press(ANN, buttons(view["blocks"])["memory_home_forget"], from_home=True)
    await slack.settle()
    modal = slack.slack.calls_to("views.open")[-1].params["view"]
    assert modal["callback_id"] == "memory_forget_query"

    def submission(callback_id: str, values: dict[str, Any], metadata: str = "") -> dict[str, Any]:
        return {
            "type": "view_submission",
            "team": {"id": "T0TEST"},
            "user": {"id": ANN, "team_id": "T0TEST"},
            "api_app_id": "A0TEST",
            "view": {
                "id": "V2",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": metadata,
                "state": {"values": values},
            },
        }

    nothing = await slack.interact(submission("memory_forget_query", {"query": {"q": {"value": "   "}}}))
    assert json.loads(nothing.text)["response_action"] == "errors"
    found = await slack.interact(submission("memory_forget_query", {"query": {"q": {"value": "Ann"}}}))
    update = json.loads(found.text)
    assert update["response_action"] == "update" and "Name: Ann" in all_text(update["view"]["blocks"])
    confirm = update["view"]
    done = await slack.interact(submission(confirm["callback_id"], {}, confirm["private_metadata"]))
    assert done.status == 200 and done.text == ""
    refreshed = (await _published(slack))["view"]
    assert "Name: Ann" not in all_text(refreshed)
    blocks = (await slack.app.services.admin.show(slack.agent(ANN))).blocks
    assert all("Name: Ann" not in b.value for b in blocks)
