"""Slack payloads → normalized messages and the answer decision (pure functions), and choosing the transport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.slack import SlackMode, choose_mode
from adapters.slack.app import api_base_url
from adapters.slack.normalize import Trigger, clean_text, parse_event, recent_from_history, to_inbound, trigger
from bot.core.events import AgentKey, Scope
from bot.settings import ConfigError, Settings

BOT = "UBOT"


def body(**event: Any) -> dict[str, Any]:
    base = {"type": "message", "user": "UANN", "ts": "1700000000.000100", "channel": "C1", "channel_type": "channel"}
    return {"team_id": "T1", "event_id": "Ev1", "event": {**base, **event}}


def test_a_dm_is_answered_inline_and_keyed_to_the_user_in_the_workspace() -> None:
    message = parse_event(body(channel="D1", channel_type="im", text="hi &amp; bye"), BOT)
    assert message is not None and trigger(message) is Trigger.DIRECT
    inbound = to_inbound(message, BOT, author_name="Ann")
    assert inbound.agent_key == AgentKey("slack", "T1", "UANN")
    assert inbound.is_dm and inbound.scope is Scope.PRIVATE and inbound.thread_id is None
    assert inbound.text == "hi & bye" and inbound.message_id == "1700000000.000100"
    assert inbound.timestamp.year == 2023


def test_a_mention_is_answered_in_a_thread_started_at_the_message() -> None:
    message = parse_event(body(type="app_mention", channel_type=None, text=f"<@{BOT}> hello"), BOT)
    assert message is not None and trigger(message) is Trigger.MENTION
    inbound = to_inbound(message, BOT, author_name="Ann", channel_name="general")
    assert inbound.thread_id == "1700000000.000100" and not inbound.is_dm and inbound.text == "hello"
    assert inbound.agent_key == AgentKey("slack", "T1", "UANN")  # same agent as in DMs


def test_a_message_event_that_mentions_the_bot_counts_as_a_mention() -> None:
    message = parse_event(body(text=f"hey <@{BOT}|membot>, a question"), BOT)
    assert message is not None and trigger(message) is Trigger.MENTION
    assert message.dedupe_key == "msg:T1:C1:1700000000.000100"


def test_thread_replies_need_the_bot_in_the_thread_and_other_channel_chatter_is_ignored() -> None:
    reply = parse_event(body(text="more", thread_ts="1699999999.000001"), BOT)
    assert reply is not None and trigger(reply) is Trigger.THREAD and reply.reply_thread == "1699999999.000001"
    chatter = parse_event(body(text="just chatting"), BOT)
    assert chatter is not None and trigger(chatter) is None


@pytest.mark.parametrize(
    "event",
    [
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "bot_message", "bot_id": "B1"},
        {"bot_id": "B1"},
        {"subtype": "channel_join"},
        {"user": BOT},
        {"user": None},
        {"hidden": True},
        {"type": "app_mention", "edited": {"user": "UANN"}},
        {"type": "reaction_added"},
    ],
)
def test_events_that_are_never_answered(event: dict[str, Any]) -> None:
    assert parse_event(body(text="x", **event), BOT) is None


def test_file_shares_carry_their_files() -> None:
    files = [{"id": "F1", "name": "notes.md", "mimetype": "text/markdown", "size": 12}]
    message = parse_event(body(channel="D1", channel_type="im", subtype="file_share", files=files), BOT)
    assert message is not None and message.files[0].name == "notes.md"


def test_clean_text_turns_slack_markup_into_plain_text() -> None:
    raw = f"<@{BOT}> see <https://a.io|the docs> and <https://b.io> in <#C1|general>, <!here> &lt;3"
    assert clean_text(raw, BOT) == "see the docs (https://a.io) and https://b.io in #general, @here <3"


def test_recent_context_skips_the_bot_the_current_message_and_later_ones() -> None:
    history = [
        {"user": "UBOB", "text": "earlier", "ts": "1.0"},
        {"user": BOT, "text": "bot words", "ts": "2.0"},
        {"user": "UANN", "text": "current", "ts": "3.0"},
        {"user": "UBOB", "text": "later", "ts": "4.0"},
        {"user": "UBOB", "subtype": "channel_join", "text": "joined", "ts": "0.5"},
    ]
    recent = recent_from_history(history, current_ts="3.0", bot_user_id=BOT, names={"UBOB": "Bob"})
    assert [(m.author_name, m.text) for m in recent] == [("Bob", "earlier")]


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, MEMBOT_DATA_DIR=Path("/tmp"), **values)  # type: ignore[call-arg]


def test_the_transport_is_chosen_by_the_settings_present() -> None:
    assert choose_mode(_settings(SLACK_BOT_TOKEN="x", SLACK_SIGNING_SECRET="s")) is SlackMode.HTTP
    assert choose_mode(_settings(SLACK_BOT_TOKEN="x", SLACK_APP_TOKEN="xapp")) is SlackMode.SOCKET
    both = _settings(SLACK_BOT_TOKEN="x", SLACK_APP_TOKEN="xapp", SLACK_SIGNING_SECRET="s")
    assert choose_mode(both) is SlackMode.SOCKET
    with pytest.raises(ConfigError, match=r"SLACK_APP_TOKEN .* or SLACK_SIGNING_SECRET"):
        choose_mode(_settings(SLACK_BOT_TOKEN="x"))
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        choose_mode(_settings(SLACK_SIGNING_SECRET="s"))


def test_api_base_url() -> None:
    assert api_base_url(None) == "https://slack.com/api/"
    assert api_base_url("http://127.0.0.1:9/api") == "http://127.0.0.1:9/api/"
