"""Faults inside a turn on Slack (the real Bolt app in HTTP mode, the Web API stand-in): the user sees one short
notice where the answer would be, a "thinking" message while a slow turn runs, and nothing is lost."""

from __future__ import annotations

from adapters.slack.mrkdwn import format_reply
from bot.runtime.runtime import MODEL_DOWN_NOTICE, NO_REPLY_NOTICE, TURN_FAILED_NOTICE, TURN_TIMEOUT_NOTICE
from memory.redis.keys import RedisKeys
from tests.faults.model_faults import FaultyModel
from tests.slack.conftest import ANN, MakeSlack, llm, make_slack  # noqa: F401  (fixtures)
from tests.slack.harness import SlackHarness
from tests.standins.slack_api import SlackStandIn

FAULTY = {"MEMBOT_LLM_RETRY_ATTEMPTS": 2, "MEMBOT_LLM_RETRY_DELAY": 0.01, "MEMBOT_MAX_STEPS": 3}


def as_posted(text: str) -> str:
    return "".join(format_reply(text))


def dm_texts(slack: SlackStandIn) -> list[str]:
    return [str(p.get("text", "")) for p in slack.posted(f"D{ANN}")]


async def recalled(harness: SlackHarness) -> list[str]:
    return [str(item["text"]) for item in (await harness.app.admin.export(harness.agent(ANN)))["recall"]]


async def test_a_store_failing_inside_a_tool_ends_the_turn_with_a_notice(make_slack: MakeSlack) -> None:  # noqa: F811
    harness = await make_slack(**FAULTY)
    await harness.say_dm(ANN, "hello")
    audit_key = RedisKeys(harness.app.settings.redis_prefix).audit(harness.agent(ANN))
    await harness.app.stores.redis.delete(audit_key)
    await harness.app.stores.redis.set(audit_key, "damaged")  # recording the archival insert fails mid-function

    await harness.say_dm(ANN, "remember: the spare key is under the mat")

    assert dm_texts(harness.slack) == ["echo: hello", as_posted(TURN_FAILED_NOTICE)]
    await harness.app.stores.redis.delete(audit_key)
    await harness.say_dm(ANN, "still with me?")
    assert dm_texts(harness.slack)[-1] == "echo: still with me?"
    assert {"hello", "remember: the spare key is under the mat", "still with me?"} <= set(await recalled(harness))


async def test_model_faults_get_notices_and_a_slow_turn_shows_it_is_thinking(make_slack: MakeSlack) -> None:  # noqa: F811
    harness = await make_slack(**FAULTY, MEMBOT_TURN_TIMEOUT=3, MEMBOT_WORKING_NOTICE_AFTER=0.5)
    harness.llm.set_handler(FaultyModel("openai"))

    await harness.say_dm(ANN, "fault:truncated")
    await harness.say_dm(ANN, "fault:hang")
    await harness.say_dm(ANN, "fault:unknown-tools")

    posted = dm_texts(harness.slack)
    assert posted == [
        as_posted(MODEL_DOWN_NOTICE),
        "_membot is thinking…_",
        as_posted(TURN_TIMEOUT_NOTICE),
        as_posted(NO_REPLY_NOTICE),
    ]
    [deleted] = harness.slack.calls_to("chat.delete")  # the thinking message is gone once the turn ended
    thinking = [m for m in harness.slack.channels[f"D{ANN}"] if m.get("text") == "_membot is thinking…_"]
    assert deleted.params["channel"] == f"D{ANN}" and not thinking
    assert {"fault:truncated", "fault:hang", "fault:unknown-tools"} <= set(await recalled(harness))
