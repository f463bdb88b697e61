"""A Redis outage on Slack (the real Bolt app in HTTP mode, the Web API stand-in, a Redis the test owns): a message
sent while Redis is down is journaled, its sender is told once, and it is answered in the same channel when Redis is
back; a message whose turn the outage broke after it was stored is not queued twice when it is replayed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from adapters.slack.mrkdwn import format_reply
from bot.runtime.outage import STORE_DOWN_NOTICE
from tests.faults.conftest import OwnedRedis
from tests.scenario import eventually
from tests.slack.conftest import ANN, BOB, MakeSlack, llm, make_slack  # noqa: F401  (fixtures)
from tests.slack.harness import SlackHarness
from tests.standins.llm_server import ScriptedReply

GENERAL = "C0GENERAL"


def as_posted(text: str) -> str:
    return "".join(format_reply(text))


def texts_in(harness: SlackHarness, channel: str) -> list[str]:
    return [str(p.get("text", "")) for p in harness.slack.posted(channel)]


async def outage_slack(make_slack: MakeSlack, owned_redis: OwnedRedis) -> SlackHarness:  # noqa: F811
    return await make_slack(
        REDIS_URL=owned_redis.url,
        MEMBOT_REDIS_RETRY_SECONDS=1,
        MEMBOT_LOCK_LEASE_SECONDS=3,
        MEMBOT_LOCK_RENEW_SECONDS=1,
        MEMBOT_TURN_TIMEOUT=30,
    )


async def test_a_message_sent_during_an_outage_is_answered_in_its_channel_when_redis_returns(
    make_slack: MakeSlack,  # noqa: F811
    owned_redis: OwnedRedis,
) -> None:
    harness = await outage_slack(make_slack, owned_redis)
    await harness.say_in_channel(ANN, "good morning")
    assert texts_in(harness, GENERAL) == ["echo: good morning"]

    await asyncio.to_thread(owned_redis.stop)
    asked = harness.mention(ANN, GENERAL, "is the meeting at noon?")
    assert (await harness.send_event(asked)).status == 200
    await harness.settle()
    await harness.say_in_channel(ANN, "and who is coming?")
    await harness.say_dm(BOB, "hi from a dm")
    assert texts_in(harness, GENERAL) == ["echo: good morning"]
    [notice] = harness.slack.calls_to("chat.postEphemeral")  # told once, and only the author (a channel notice)
    assert notice.params["text"] == as_posted(STORE_DOWN_NOTICE) and notice.params["user"] == ANN
    assert texts_in(harness, f"D{BOB}") == [as_posted(STORE_DOWN_NOTICE)]

    await asyncio.to_thread(owned_redis.start)
    await eventually(lambda: len(texts_in(harness, GENERAL)) == 3, within=60, what="the answers after the outage")
    assert texts_in(harness, GENERAL)[1:] == ["echo: is the meeting at noon?", "echo: and who is coming?"]
    await eventually(lambda: texts_in(harness, f"D{BOB}")[-1:] == ["echo: hi from a dm"], within=60, what="the DM")
    [answer] = [p for p in harness.slack.posted(GENERAL) if p.get("text") == "echo: is the meeting at noon?"]
    assert answer.get("thread_ts") == asked["ts"], "answered in the thread of the message, as without an outage"

    async def recalled() -> bool:
        exported = await harness.app.admin.export(harness.agent(ANN))
        return {"is the meeting at noon?", "and who is coming?"} <= {str(item["text"]) for item in exported["recall"]}

    await eventually(recalled, within=60, what="both messages in recall")


@pytest.mark.redis_aof
async def test_a_turn_broken_after_storing_its_message_is_replayed_without_queuing_it_twice(
    make_slack: MakeSlack,  # noqa: F811
    owned_redis: OwnedRedis,
) -> None:
    harness = await outage_slack(make_slack, owned_redis)
    release = threading.Event()
    # the model answers with a memory write: the first Redis call after the outage began, before anything was sent
    harness.llm.push(
        ScriptedReply(
            tool_calls=[("core_memory_append", {"label": "human", "content": "likes tea", "request_heartbeat": True})],
            hold=release,
        )
    )
    sent = await harness.send_event(harness.dm(ANN, "I like tea"))
    assert sent.status == 200
    await eventually(lambda: len(harness.llm.requests) == 1, what="the model asked (the message is stored)")
    await asyncio.to_thread(owned_redis.stop)
    release.set()
    await harness.settle()
    assert texts_in(harness, f"D{ANN}") == [as_posted(STORE_DOWN_NOTICE)]

    await asyncio.to_thread(owned_redis.start)
    await eventually(lambda: texts_in(harness, f"D{ANN}")[-1:] == ["echo: I like tea"], within=60, what="the answer")
    working = (await harness.app.admin.export(harness.agent(ANN)))["working"]
    queued = [item for item in working if "I like tea" in str(item.get("content", ""))]
    assert len(queued) == 1, f"the replayed message is queued once: {working}"
