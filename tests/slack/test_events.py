"""Messages in and replies out through the real Bolt app over signed HTTP, Web API on the stand-in."""

from __future__ import annotations

import json
import logging

import pytest

from adapters.slack import SlackAdapter
from bot.core.events import ReplyAddress
from tests.slack.conftest import ANN, BOB, MakeSlack
from tests.slack.harness import BOT, SlackHarness, texts
from tests.standins.llm_server import ScriptedReply


async def test_a_mention_gets_a_threaded_reply(slack: SlackHarness) -> None:
    event = slack.mention(ANN, "C0GENERAL", "hello there")
    reply = await slack.send_event(event)
    assert reply.status == 200
    await slack.settle()
    posts = slack.slack.posted("C0GENERAL")
    assert len(posts) == 1
    assert posts[0]["thread_ts"] == event["ts"]
    assert posts[0]["text"].endswith("hello there") and posts[0]["text"].startswith("echo:")
    assert f"<@{BOT}>" not in slack.llm.requests[0].messages[-1]["content"]
    assert "Ann in #chan-c0general" in slack.llm.requests[0].messages[-1]["content"]
    assert (await slack.app.services.admin.show(slack.agent(ANN))).recall_count == 2


async def test_a_dm_gets_a_reply(slack: SlackHarness) -> None:
    reply = await slack.send_event(slack.dm(ANN, "how are you?"))
    assert reply.status == 200
    await slack.settle()
    assert slack.slack.posted(f"D{ANN}") == [
        {
            "channel": f"D{ANN}",
            "text": "echo: how are you?",
            "mrkdwn": True,
            "unfurl_links": False,
            "unfurl_media": False,
        }
    ]
    assert "(direct message, slack)" in slack.llm.requests[0].messages[-1]["content"]


async def test_web_api_calls_share_one_connection(slack: SlackHarness) -> None:
    """slack_sdk opens a connection (with Slack, a TLS handshake) per call unless the adapter gives it a session."""
    for text in ("one", "two", "three"):
        await slack.say_dm(ANN, text)
    await slack.say_in_channel(BOB, "four")
    peers = {call.peer for call in slack.slack.calls if call.method != "auth.test"}
    assert len(slack.slack.posted()) == 4 and len(peers) == 1


async def test_the_same_event_resent_with_retry_headers_is_answered_once(slack: SlackHarness) -> None:
    event = slack.dm(ANN, "only once please")
    first = await slack.send_event(event, event_id="Ev0RETRY")
    again = await slack.send_event(event, event_id="Ev0RETRY", retry=1)
    third = await slack.send_event(event, event_id="Ev0RETRY", retry=2)
    assert [first.status, again.status, third.status] == [200, 200, 200]
    await slack.settle()
    assert texts(slack.slack.calls_to("chat.postMessage")) == ["echo: only once please"]
    assert slack.model_calls() == 1


async def test_a_mention_delivered_as_app_mention_and_as_message_is_answered_once(slack: SlackHarness) -> None:
    mention = slack.mention(ANN, "C0GENERAL", "twice delivered")
    as_message = {**mention, "type": "message", "channel_type": "channel"}
    await slack.send_event(mention)
    await slack.send_event(as_message)
    await slack.settle()
    assert len(slack.slack.posted("C0GENERAL")) == 1
    assert slack.model_calls() == 1


async def test_a_wrong_or_missing_signature_gets_401_and_nothing_else_happens(slack: SlackHarness) -> None:
    assert [c.method for c in slack.slack.calls] == ["auth.test"]  # the adapter's start-up check
    body = json.dumps(slack.envelope(slack.dm(ANN, "forged")))
    wrong = await slack.post(body, "application/json", secret="not-the-secret")
    missing = await slack.post(body, "application/json", signed=False)
    stale = await slack.post(body, "application/json", timestamp="1500000000")
    tampered_headers = {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=00"}
    tampered = await slack.post(body, "application/json", signed=False, headers=tampered_headers)
    assert [wrong.status, missing.status, stale.status, tampered.status] == [401, 401, 401, 401]
    command = "command=%2Fmemory&text=reset&user_id=UANN&team_id=T0TEST&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fx"
    assert (await slack.post(command, "application/x-www-form-urlencoded", secret="nope")).status == 401
    await slack.settle()
    assert [c.method for c in slack.slack.calls] == ["auth.test"]
    assert slack.model_calls() == 0


async def test_edits_deletions_and_bot_messages_are_ignored(slack: SlackHarness) -> None:
    channel = f"D{ANN}"
    ignored = [
        slack.dm(ANN, "", subtype="message_changed", message={"text": "edited", "user": ANN}),
        slack.dm(ANN, "", subtype="message_deleted", deleted_ts="1.0"),
        slack.dm(ANN, "from a bot", subtype="bot_message", bot_id="BOTHER"),
        slack.dm(ANN, "from an integration", bot_id="BOTHER"),
        slack.dm(BOT, "my own message"),
        slack.dm(ANN, "someone joined", subtype="channel_join"),
        slack.mention(ANN, "C0GENERAL", "edited mention", edited={"user": ANN, "ts": "1.0"}),
        slack.channel_message(ANN, "C0GENERAL", "chatter the bot is not asked about"),
    ]
    for event in ignored:
        assert (await slack.send_event(event)).status == 200
    await slack.say_dm(ANN, "the real one")
    assert texts(slack.slack.calls_to("chat.postMessage")) == ["echo: the real one"]
    assert slack.model_calls() == 1
    assert slack.slack.posted(channel)[0]["text"] == "echo: the real one"


async def test_follow_ups_are_answered_only_in_threads_the_bot_is_part_of(slack: SlackHarness) -> None:
    start = slack.mention(ANN, "C0GENERAL", "let's talk")
    await slack.send_event(start)
    await slack.settle()
    follow_up = slack.channel_message(BOB, "C0GENERAL", "and one more thing", thread_ts=start["ts"])
    await slack.send_event(follow_up)
    other_thread = slack.channel_message(BOB, "C0GENERAL", "not for the bot", thread_ts="1000.000001")
    await slack.send_event(other_thread)
    await slack.settle()
    posts = slack.slack.posted("C0GENERAL")
    assert [p["thread_ts"] for p in posts] == [start["ts"], start["ts"]]
    assert posts[1]["text"].endswith("and one more thing")
    assert "not for the bot" not in json.dumps([r.messages for r in slack.llm.requests])
    assert slack.model_calls() == 2


async def test_thread_membership_is_read_from_slack_after_a_restart(slack: SlackHarness) -> None:
    # The bot replied in this thread earlier (another process, or before a restart): Slack knows, the cache doesn't.
    parent = slack.channel_message(ANN, "C0RANDOM", "old question")
    slack.slack.record_message("C0RANDOM", parent)
    old_reply = {"type": "message", "user": BOT, "bot_id": "BBOT", "text": "old answer", "ts": slack.ts()}
    slack.slack.record_message("C0RANDOM", {**old_reply, "thread_ts": parent["ts"]})
    await slack.send_event(slack.channel_message(ANN, "C0RANDOM", "back again", thread_ts=parent["ts"]))
    await slack.settle()
    posts = slack.slack.posted("C0RANDOM")
    assert len(posts) == 1 and posts[0]["thread_ts"] == parent["ts"]
    assert slack.slack.calls_to("conversations.replies")
    packed = slack.llm.requests[0].messages[-1]["content"]
    assert "- Ann: old question" in packed  # the thread so far, minus the bot's own words


async def test_too_many_messages_get_a_notice_not_silence(make_slack: MakeSlack) -> None:
    slack = await make_slack(MEMBOT_RATE_LIMIT_PER_MINUTE=1)
    for text in ("one", "two", "three"):
        await slack.send_event(slack.dm(ANN, text))
        await slack.settle()
    posted = texts(slack.slack.calls_to("chat.postMessage"))
    notices = [t for t in posted if "faster than I can keep up" in t]
    answers = [t for t in posted if t.startswith("echo:")]
    # Fixed one-minute windows: at most one window boundary falls between these three messages.
    assert len(notices) == 1 and 1 <= len(answers) <= 2
    assert slack.model_calls() == len(answers)


async def test_rate_limit_notice_in_a_channel_is_ephemeral(make_slack: MakeSlack) -> None:
    slack = await make_slack(MEMBOT_RATE_LIMIT_PER_MINUTE=1)
    for text in ("one", "two", "three"):
        await slack.send_event(slack.mention(ANN, "C0GENERAL", text))
        await slack.settle()
    ephemeral = slack.slack.calls_to("chat.postEphemeral")
    assert len(ephemeral) == 1
    assert ephemeral[0].params["user"] == ANN and "faster than I can keep up" in ephemeral[0].params["text"]


async def test_markdown_becomes_mrkdwn_and_long_answers_are_split(slack: SlackHarness) -> None:
    await slack.say_dm(ANN, "**bold** and [a link](https://example.com/?a=1&b=2) and `x < y`")
    assert texts(slack.slack.calls_to("chat.postMessage")) == [
        "echo: *bold* and <https://example.com/?a=1&amp;b=2|a link> and `x &lt; y`"
    ]
    paragraph = "word " * 150
    long_text = "\n\n".join(f"part {i}: {paragraph.strip()}" for i in range(8))  # ~6,100 characters
    await slack.say_dm(ANN, long_text)
    pieces = texts(slack.slack.calls_to("chat.postMessage"))[1:]
    assert len(pieces) >= 3 and all(len(p) <= 3000 for p in pieces)
    assert "\n\n".join(pieces) == "echo: " + long_text


async def test_url_verification_is_answered_with_the_challenge(slack: SlackHarness) -> None:
    body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"})
    reply = await slack.post(body, "application/json")
    assert reply.status == 200 and "c-123" in reply.text


async def test_events_are_acknowledged_before_the_turn_runs(slack: SlackHarness) -> None:
    slow = ScriptedReply(tool_calls=[("send_message", {"message": "thought about it"})], delay=1.5)
    slack.llm.push(slow, ScriptedReply(text="done"))
    reply = await slack.send_event(slack.dm(ANN, "take your time"))
    assert reply.status == 200 and reply.seconds < 1.0
    assert slack.slack.calls_to("chat.postMessage") == []
    await slack.settle()
    assert texts(slack.slack.calls_to("chat.postMessage")) == ["thought about it"]


async def test_send_direct_posts_where_the_user_is(slack: SlackHarness) -> None:
    await slack.adapter.send_direct(ReplyAddress("slack", f"D{ANN}", ANN, "T0TEST", None, True), "**ping**")
    await slack.adapter.send_direct(ReplyAddress("slack", "C0GENERAL", ANN, "T0TEST", "1.5", False), "in thread")
    await slack.adapter.send_direct(ReplyAddress("slack", "", BOB, "T0TEST"), "opened")
    posted = [(p["channel"], p.get("thread_ts"), p["text"]) for p in slack.slack.posted()]
    assert posted == [(f"D{ANN}", None, "*ping*"), ("C0GENERAL", "1.5", "in thread"), (f"D{BOB}", None, "opened")]


async def test_membot_run_builds_the_slack_adapter_when_a_bot_token_is_set(slack: SlackHarness) -> None:
    assert slack.app.services is not None
    adapters = slack.app.build_adapters()
    assert [type(a) for a in adapters] == [SlackAdapter] and adapters[0].platform == "slack"


async def test_no_unused_token_warning_when_the_token_is_in_the_environment(
    make_slack: MakeSlack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")  # as in a container, where .env becomes the environment
    with caplog.at_level(logging.WARNING):
        await make_slack()
    assert not [r for r in caplog.records if "will be unused" in r.getMessage()]
