"""Channel control on Slack: `/memory channel off|mention|always|listen` for workspace admins, and the allowlists."""

from __future__ import annotations

import pytest

from bot.admin.memory import UnknownAgent
from bot.core.events import Scope
from bot.runtime.channels import NOT_ALLOWED_NOTICE, SWITCHED_OFF_NOTICE
from tests.slack.conftest import ADA, ANN, BOB, MakeSlack
from tests.slack.harness import SlackHarness, all_text, texts

RANDOM = "C0RANDOM"


async def set_mode(slack: SlackHarness, user: str, mode: str, channel: str = RANDOM) -> str:
    reply, response_url = await slack.command(user, f"channel {mode}", channel=channel, channel_name="random")
    assert reply.status == 200
    await slack.settle()
    return all_text(slack.responses(response_url))


def posted(slack: SlackHarness, channel: str = RANDOM, method: str = "chat.postMessage") -> list[str]:
    return texts([c for c in slack.slack.calls_to(method) if c.params.get("channel") == channel])


async def test_only_admins_set_a_mode_and_an_unknown_one_is_explained(slack: SlackHarness) -> None:
    refused = await set_mode(slack, ANN, "always")
    assert "every message" not in refused and "admin" in refused.lower(), refused
    assert await slack.app.services.channel_modes.get("slack", RANDOM) == "mention"
    assert "Usage, in a channel" in await set_mode(slack, ADA, "sometimes")
    assert "every message" in await set_mode(slack, ADA, "always")
    assert await slack.app.services.channel_modes.get("slack", RANDOM) == "always"


async def test_always_answers_every_message_of_the_channel(slack: SlackHarness) -> None:
    await set_mode(slack, ADA, "always")
    await slack.send_event(slack.channel_message(BOB, RANDOM, "no mention needed"))
    await slack.settle()
    assert posted(slack) == ["echo: no mention needed"]
    await slack.send_event(slack.channel_message(BOB, "C0GENERAL", "but not here"))
    await slack.settle()
    assert posted(slack, "C0GENERAL") == []


async def test_listen_remembers_and_answers_only_a_mention(slack: SlackHarness) -> None:
    assert "read and remember" in await set_mode(slack, ADA, "listen")
    calls = slack.model_calls()
    await slack.send_event(slack.channel_message(BOB, RANDOM, "the offsite is in Lisbon"))
    await slack.settle()
    assert posted(slack) == [] and slack.model_calls() == calls
    found = await slack.app.admin.search(slack.agent(BOB), "where is the offsite", Scope.PUBLIC)
    assert [hit.text for hit in found] == ["the offsite is in Lisbon"]
    await slack.send_event(slack.mention(BOB, RANDOM, "what did I say?"))
    await slack.settle()
    assert posted(slack) == ["echo: what did I say?"]


async def test_off_neither_reads_nor_answers_and_tells_a_mention_once(slack: SlackHarness) -> None:
    assert "stay out" in await set_mode(slack, ADA, "off")
    await slack.send_event(slack.channel_message(BOB, RANDOM, "chatter"))
    await slack.send_event(slack.mention(BOB, RANDOM, "hello?"))
    await slack.send_event(slack.mention(BOB, RANDOM, "hello again?"))
    await slack.settle()
    assert posted(slack) == []
    assert posted(slack, method="chat.postEphemeral") == [SWITCHED_OFF_NOTICE], "only Bob sees it, once"
    with pytest.raises(UnknownAgent):
        await slack.app.admin.search(slack.agent(BOB), "chatter", Scope.PUBLIC)


async def test_allowlisted_people_only(make_slack: MakeSlack) -> None:
    slack = await make_slack(MEMBOT_ALLOWED_USERS=ANN)
    await slack.send_event(slack.dm(ANN, "hi, I'm allowed"))
    await slack.send_event(slack.dm(BOB, "hi, I'm not"))
    await slack.send_event(slack.dm(BOB, "still not"))
    await slack.settle()
    assert posted(slack, f"D{ANN}") == ["echo: hi, I'm allowed"]
    assert posted(slack, f"D{BOB}") == [NOT_ALLOWED_NOTICE], "told once a day"
