"""Live replies on Slack: a long send_message is posted once, grows through chat.update about once a second, and
ends exactly as the plain delivery would have posted it (the real app and Bolt against the Web API stand-in, the
scripted model streaming over SSE)."""

from __future__ import annotations

import asyncio
import itertools
import json

from adapters.slack.mrkdwn import format_reply
from adapters.slack.sink import WORKING_TEXT
from tests.slack.conftest import ANN, MakeSlack
from tests.standins.brain import LONG_ANSWER
from tests.standins.llm_server import ScriptedReply, StreamPlan
from tests.standins.slack_api import ApiCall

DM = f"D{ANN}"
PLAIN = format_reply(LONG_ANSWER)  # what a reply sent at once posts: mrkdwn, cut into messages
SLOW = StreamPlan(chunk=20, delay=0.012)  # LONG_ANSWER takes about 3.5 s to arrive


def chat_calls(calls: list[ApiCall]) -> list[ApiCall]:
    return [c for c in calls if c.method in ("chat.postMessage", "chat.update", "chat.delete")]


def final_texts(slack_calls: list[dict[str, str]]) -> list[str]:
    return [m["text"] for m in slack_calls]


async def test_a_long_reply_is_posted_then_updated_and_ends_as_the_plain_delivery(make_slack: MakeSlack) -> None:
    h = await make_slack()
    h.brain.stream = SLOW
    await h.say_dm(ANN, "long answer please")

    assert h.llm.streamed >= 1
    assert final_texts(h.slack.bot_messages(DM)) == PLAIN and len(PLAIN) >= 2
    calls = chat_calls(h.slack.calls)
    first = calls[0]
    assert first.method == "chat.postMessage" and first.params["text"] != PLAIN[0]  # shown before it was whole
    assert PLAIN[0].startswith(first.params["text"][:40])
    updates = [c for c in calls if c.method == "chat.update"]
    assert len(updates) >= 2
    # while growing, one message is updated at most about once a second (the last update is the final one)
    first_ts = first.params.get("ts") or h.slack.bot_messages(DM)[0]["ts"]
    growing = [c for c in updates if c.params["ts"] == first_ts][:-1]
    gaps = [b.at - a.at for a, b in itertools.pairwise(growing)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert not h.slack.calls_to("chat.delete")  # no message appeared and vanished
    assert WORKING_TEXT not in [c.params.get("text") for c in calls]  # shown within 3 s: no "thinking" message


async def test_the_same_reply_without_streaming_is_posted_at_once(make_slack: MakeSlack) -> None:
    h = await make_slack(MEMBOT_STREAM="off")
    h.brain.stream = SLOW
    await h.say_dm(ANN, "long answer please")

    assert h.llm.streamed == 0
    assert final_texts(h.slack.bot_messages(DM)) == PLAIN
    assert [c.method for c in chat_calls(h.slack.calls)] == ["chat.postMessage"] * len(PLAIN)


async def test_the_thinking_message_is_taken_over_not_deleted(make_slack: MakeSlack) -> None:
    h = await make_slack(MEMBOT_WORKING_NOTICE_AFTER="0.2")
    h.brain.stream = SLOW
    await h.say_dm(ANN, "long answer please")

    calls = chat_calls(h.slack.calls)
    assert calls[0].method == "chat.postMessage" and calls[0].params["text"] == WORKING_TEXT
    working_ts = h.slack.bot_messages(DM)[0]["ts"]
    assert calls[1].method == "chat.update" and calls[1].params["ts"] == working_ts
    assert final_texts(h.slack.bot_messages(DM)) == PLAIN
    assert not h.slack.calls_to("chat.delete")


async def test_rate_limited_updates_wait_and_the_end_is_still_exact(make_slack: MakeSlack) -> None:
    h = await make_slack()
    h.brain.stream = SLOW
    h.slack.ratelimit("chat.update", retry_after=1, times=2)
    await h.say_dm(ANN, "long answer please")

    assert [c for c in h.slack.calls_to("chat.update")][:2]  # the limited calls were made and answered 429
    assert final_texts(h.slack.bot_messages(DM)) == PLAIN


async def test_a_stream_cut_midway_is_replaced_by_the_retried_answer(make_slack: MakeSlack) -> None:
    h = await make_slack()
    h.brain.stream = SLOW
    first_try = "An earlier draft. " * 200
    h.llm.push(
        ScriptedReply(tool_calls=[("send_message", {"message": first_try})], stream=StreamPlan(20, 0.01, cut_after=150))
    )
    await h.say_dm(ANN, "long answer please")

    shown = [c.params["text"] for c in chat_calls(h.slack.calls) if c.method != "chat.delete"]
    assert any("An earlier draft." in text for text in shown)  # the first attempt was shown...
    assert final_texts(h.slack.bot_messages(DM)) == PLAIN  # ...and replaced by the retried answer


async def test_a_rejected_reply_preview_is_corrected_by_the_next_reply(make_slack: MakeSlack) -> None:
    h = await make_slack()
    h.brain.stream = SLOW
    rejected = {"message": LONG_ANSWER[:4000], "mood": "chatty"}  # an unknown argument: the call fails
    h.llm.push(ScriptedReply(tool_calls=[("send_message", rejected)], stream=StreamPlan(20, 0.01)))
    await h.say_dm(ANN, "hello")

    shown = [c.params["text"] for c in h.slack.calls_to("chat.postMessage")]
    assert shown and LONG_ANSWER[:30] in shown[0]  # the rejected reply was shown while written
    [message] = h.slack.bot_messages(DM)  # then the next reply took its place
    assert message["text"].startswith("That failed: ") and LONG_ANSWER[:30] not in message["text"]


async def test_recall_keeps_only_the_final_text(make_slack: MakeSlack) -> None:
    h = await make_slack()
    h.brain.stream = SLOW
    await h.say_dm(ANN, "long answer please")
    await h.say_dm(ANN, "hello again")

    history = h.llm.requests[-1].messages
    sent = [json.loads(call["arguments"]) for m in history for call in m["tool_calls"]]
    assert {"message": LONG_ANSWER} in sent  # the queue holds the reply once, whole


async def test_a_preview_deleted_meanwhile_is_posted_again_in_full(make_slack: MakeSlack) -> None:
    h = await make_slack()
    h.brain.stream = SLOW
    turn = asyncio.create_task(h.say_dm(ANN, "long answer please"))
    await h.slack.wait_for(lambda: h.slack.bot_messages(DM))
    preview_ts = h.slack.bot_messages(DM)[0]["ts"]
    h.slack.channels[DM] = [m for m in h.slack.channels[DM] if m.get("ts") != preview_ts]  # someone deleted it
    await turn

    assert any(c.params["ts"] == preview_ts for c in h.slack.calls_to("chat.update"))  # answered message_not_found
    assert final_texts(h.slack.bot_messages(DM)) == PLAIN  # every piece is there, whole and in order


async def test_a_final_update_that_stays_rate_limited_posts_the_reply_again_in_order(make_slack: MakeSlack) -> None:
    h = await make_slack()
    h.brain.stream = SLOW
    h.slack.ratelimit("chat.update", retry_after=1, times=5)
    await h.say_dm(ANN, "long answer please")

    assert not h.slack.ratelimits["chat.update"]  # every limited answer was met (and waited out)
    assert final_texts(h.slack.bot_messages(DM)) == PLAIN
