"""The real discord.py client against the Discord stand-in: when membot answers, how, and how often.

"Gets no answer" is checked with a sentinel: after the message that must be ignored, a DM that must be answered
is sent. Events arrive in order on the gateway connection; deciding to ignore a message takes at most one Redis
round trip, answering the sentinel takes a model call, so once the sentinel's answer is there the ignored message
has long been decided. The tests also check the model never saw the ignored text.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from adapters.discord import build_discord_adapter
from bot.app import open_app
from bot.core.events import AgentKey, ReplyAddress
from bot.runtime.runtime import NOT_SAVED_NOTICE
from bot.settings import ConfigError
from memory.redis.keys import RedisKeys
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import MENTION, answer_to, imported, model_saw, replies_to, sentinel
from tests.scenario import settings_for
from tests.standins.brain import LONG_ANSWER
from tests.standins.discord_server import (
    ALICE,
    BOB,
    BOT,
    BOT_ROLE,
    GENERAL,
    GUILD_ID,
    MANAGE_GUILD,
    OTHER_BOT,
    RANDOM,
    THREAD,
    DiscordStandIn,
)
from tests.standins.llm_server import ScriptedLLMServer
from tests.test_import import make_pdf


async def test_connects_through_the_configured_base_url_and_syncs_slash_commands(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    [login] = discord_api.matching(lambda c: c.path == "/users/@me" and c.method == "GET")
    assert login.headers["Authorization"] == "Bot test-token"
    assert discord_api.matching(lambda c: c.path == "/gateway/bot"), "the gateway URL came from the REST base"
    assert discord_api.ws_queries[0]["v"] == "10"
    intents = discord_api.identifies[0]["intents"]
    assert intents & (1 << 15), "the Message Content intent is requested"
    assert intents & (1 << 9) and intents & (1 << 12), "server and DM messages"
    [sync] = discord_api.matching(lambda c: c.method == "PUT" and c.path.endswith("/commands"))
    commands = {c["name"]: c for c in sync.json}
    assert set(commands) == {"memory", "membot"}
    assert {o["name"] for o in commands["memory"]["options"]} == {
        "show",
        "search",
        "forget",
        "reset",
        "export",
        "proactive",
        "timezone",
        "reminders",
        "history",
        "rollback",
        "private",
        "public",
    }
    assert {o["name"] for o in commands["membot"]["options"]} == {"channel", "user"}
    user = next(o for o in commands["membot"]["options"] if o["name"] == "user")
    assert {o["name"] for o in user["options"]} == {"show", "reset", "history", "rollback"}
    assert discord_api.heartbeats >= 1, "heartbeats are sent and acknowledged"


async def test_a_dm_gets_an_answer_as_a_reply_with_typing_shown(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    sent = await discord_api.send_message(ALICE, "hello there")
    [reply] = await answer_to(discord_api, sent)
    assert reply.json["content"] == "echo: hello there"
    assert reply.json["allowed_mentions"] == {"parse": [], "users": [int(ALICE["id"])]}
    typing = discord_api.matching(lambda c: c.path == f"/channels/{sent['channel_id']}/typing")
    assert typing and discord_api.calls.index(typing[0]) < discord_api.calls.index(reply)
    view = await harness.app.admin.show(AgentKey("discord", "dm", ALICE["id"]))
    assert view.recall_count == 2


async def test_a_server_message_without_mention_gets_none_and_a_mention_gets_a_reply(
    harness: DiscordHarness,
) -> None:
    discord_api = harness.discord
    quiet = await discord_api.send_message(ALICE, "just chatting with friends", channel_id=GENERAL)
    loud = await discord_api.send_message(ALICE, f"{MENTION} what do you think?", channel_id=GENERAL, mentions=(BOT,))
    [reply] = await answer_to(discord_api, loud)
    assert reply.json["content"] == "echo: what do you think?"
    assert reply.json["message_reference"]["fail_if_not_exists"] is False
    assert reply.json["allowed_mentions"]["parse"] == [], "never @everyone, @here or roles"
    assert replies_to(discord_api, quiet) == []
    assert len(discord_api.matching(discord_api.created_in(GENERAL))) == 1
    assert not model_saw(harness, "just chatting with friends"), "the author's own chatter is not context either"
    agent = AgentKey("discord", str(GUILD_ID), ALICE["id"])
    assert (await harness.app.admin.show(agent)).recall_count == 2


async def test_replies_to_membot_and_its_role_mention_are_answered(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    earlier = discord_api.message_payload(BOT, "echo: earlier", GENERAL, guild=True)
    reply = await discord_api.send_message(BOB, "and another thing", channel_id=GENERAL, reply_to=earlier)
    [answer] = await answer_to(discord_api, reply)
    assert answer.json["content"] == "echo: and another thing"
    role = await discord_api.send_message(
        BOB, f"<@&{BOT_ROLE}> via the role", channel_id=GENERAL, mention_roles=(BOT_ROLE,)
    )
    [answer] = await answer_to(discord_api, role)
    assert answer.json["content"] == "echo: via the role"


async def test_a_5000_character_answer_arrives_as_three_messages_with_code_fences_intact(
    harness: DiscordHarness,
) -> None:
    discord_api = harness.discord
    sent = await discord_api.send_message(ALICE, "long answer please")
    [first] = await answer_to(discord_api, sent)
    messages = await discord_api.wait_for(discord_api.created_in(sent["channel_id"]), count=3)
    await sentinel(harness)
    assert len(discord_api.matching(discord_api.created_in(sent["channel_id"]))) == 3
    texts = [m.json["content"] for m in messages]
    assert messages[0] is first, "the first part replies to the question; the others follow it"
    assert all("message_reference" not in m.json for m in messages[1:])
    assert all(len(text) <= 2000 for text in texts)
    assert all(text.count("```") % 2 == 0 for text in texts), "each part closes the code block it shows"
    assert texts[1].startswith("```python") and texts[2].startswith("```python")
    assert (
        "".join(texts).replace("```python", "").replace("```", "").split()
        == LONG_ANSWER.replace("```python", "").replace("```", "").split()
    )


async def test_the_same_message_create_delivered_twice_is_answered_once(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    sent = await discord_api.send_message(ALICE, "only once please")
    await discord_api.dispatch("MESSAGE_CREATE", sent)
    await answer_to(discord_api, sent)
    await sentinel(harness)
    assert len(replies_to(discord_api, sent)) == 1
    assert sum("only once please" in str(r.messages[-1]) for r in harness.llm.requests) == 1


async def test_a_message_replayed_after_a_gateway_resume_is_answered_once(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    sent = await discord_api.send_message(ALICE, "before the reconnect")
    await answer_to(discord_api, sent)
    await discord_api.reconnect()
    assert discord_api.resumes[-1]["session_id"] == "session-1" and len(discord_api.identifies) == 1
    await discord_api.dispatch("MESSAGE_CREATE", sent)  # Discord replays events the session may have missed
    await sentinel(harness)
    assert len(replies_to(discord_api, sent)) == 1


async def test_bots_and_membot_itself_are_ignored(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    from_bot = await discord_api.send_message(OTHER_BOT, f"{MENTION} beep boop", channel_id=GENERAL, mentions=(BOT,))
    own = await discord_api.send_message(BOT, "echo: my own words")
    await sentinel(harness)
    assert replies_to(discord_api, from_bot) == [] and replies_to(discord_api, own) == []
    assert not model_saw(harness, "beep boop") and not model_saw(harness, "my own words")


async def test_a_channel_switched_to_always_is_answered_without_mention(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    command = await discord_api.slash(ALICE, "membot channel always", permissions=MANAGE_GUILD, channel_id=RANDOM)
    [ack] = await discord_api.wait_for(discord_api.callbacks_for(command))
    assert ack.json["type"] == 4 and ack.json["data"]["flags"] == 64
    assert "every message" in ack.json["data"]["content"]
    sent = await discord_api.send_message(BOB, "no mention needed here", channel_id=RANDOM)
    [reply] = await answer_to(discord_api, sent)
    assert reply.json["content"] == "echo: no mention needed here"
    elsewhere = await discord_api.send_message(BOB, "but not in general", channel_id=GENERAL)
    await sentinel(harness)
    assert replies_to(discord_api, elsewhere) == []
    back = await discord_api.slash(ALICE, "membot channel mention", permissions=MANAGE_GUILD, channel_id=RANDOM)
    await discord_api.wait_for(discord_api.callbacks_for(back))
    assert harness.app.services is not None
    assert await harness.app.services.channel_modes.get("discord", str(RANDOM)) == "mention"


async def test_a_thread_it_was_addressed_in_keeps_getting_answers(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    before = await discord_api.send_message(ALICE, "thinking out loud", channel_id=THREAD)
    asked = await discord_api.send_message(ALICE, f"{MENTION} help us plan", channel_id=THREAD, mentions=(BOT,))
    [reply] = await answer_to(discord_api, asked)
    assert reply.path == f"/channels/{THREAD}/messages", "answers stay inside the thread"
    follow_up = await discord_api.send_message(BOB, "what about Friday?", channel_id=THREAD)
    [reply] = await answer_to(discord_api, follow_up)
    assert reply.json["content"] == "echo: what about Friday?"
    assert replies_to(discord_api, before) == []
    request = next(r for r in harness.llm.requests if "help us plan" in str(r.messages[-1]))
    assert "#general/plans" in request.messages[-1]["content"]


async def test_recent_messages_from_others_give_the_model_context(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    await discord_api.send_message(BOB, "the meeting moved to 3pm", channel_id=GENERAL)
    asked = await discord_api.send_message(ALICE, f"{MENTION} did you see that?", channel_id=GENERAL, mentions=(BOT,))
    await answer_to(discord_api, asked)
    packed = next(r for r in harness.llm.requests if "did you see that?" in str(r.messages[-1])).messages[-1]
    assert "Recent messages from others in the channel" in packed["content"]
    assert "Bob: the meeting moved to 3pm" in packed["content"]
    assert "#general" in packed["content"]


@pytest.mark.parametrize("discord_settings", [{"MEMBOT_RATE_LIMIT_PER_MINUTE": 2}])
async def test_over_the_rate_limit_the_user_gets_a_notice_not_silence(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    seconds = time.time() % 60
    if seconds > 50:  # keep the three messages inside one rate-limit window (a clock minute)
        await asyncio.sleep(60.5 - seconds)
    sent = [await discord_api.send_message(ALICE, f"burst {i}") for i in range(3)]
    answers = {m["content"]: (await answer_to(discord_api, m))[0].json["content"] for m in sent}
    echoes = [text for text in answers.values() if text.startswith("echo: burst")]
    notices = [text for text in answers.values() if "faster than I can keep up" in text]
    assert len(echoes) == 2 and len(notices) == 1
    assert "at most 2 a minute" in notices[0]
    [limited] = [content for content, text in answers.items() if text in notices]
    assert not model_saw(harness, limited), "a message over the limit never reaches the model"


async def test_text_and_markdown_files_sent_in_a_dm_are_imported_into_archival_memory(
    harness: DiscordHarness,
) -> None:
    discord_api = harness.discord
    notes = "# Trip\n\nWe fly to Lisbon on May 3.\n\nHotel: Casa Azul, room 12.\n"
    diary = "\n\n".join(f"Day {day}: " + f"walked along the river and wrote note {day}. " * 18 for day in range(3))
    files = (
        discord_api.attachment("notes.md", notes.encode(), "text/markdown; charset=utf-8"),
        discord_api.attachment("diary.txt", diary.encode(), "text/plain"),
        discord_api.attachment("song.mp3", b"ID3....", "audio/mpeg"),
        discord_api.attachment("big.md", b"x" * 20_000_001, "text/markdown"),
        discord_api.attachment("manual.pdf", make_pdf(["The boiler is in the cellar.", "Bleed it in May."]), None),
    )
    sent = await discord_api.send_message(ALICE, "", attachments=files)
    texts = (await imported(discord_api, sent)).split("\n")
    assert texts[0] == "Imported notes.md into my archival memory: 1 of 1 passages stored."
    assert texts[1] == "Imported diary.txt into my archival memory: 3 of 3 passages stored."
    assert "PDF and Word (.docx) files" in texts[2] and "skipped song.mp3" in texts[2]
    assert texts[3].startswith("big.md is too big to import (20.0 MB; the limit is 20 MB).")
    assert texts[4] == "Imported manual.pdf into my archival memory: 2 of 2 passages stored."
    assert discord_api.matching(lambda c: c.path == f"/channels/{sent['channel_id']}/typing")
    agent = AgentKey("discord", "dm", ALICE["id"])
    assert await harness.app.stores.archival.count(agent) == 6
    assert not model_saw(harness, "Casa Azul"), "an import is not a conversation turn"
    again = await discord_api.send_message(
        ALICE, "did you get it?", attachments=(discord_api.attachment("notes.md", notes.encode(), None),)
    )
    assert await imported(discord_api, again) == (
        "Imported notes.md into my archival memory: 0 of 1 passages stored (1 I already had)."
    )
    [_, answer] = await answer_to(discord_api, again, count=2)
    assert answer.json["content"] == "echo: did you get it?"
    assert await harness.app.stores.archival.count(agent) == 6


async def test_send_direct_reaches_a_dm_channel_and_pings_only_that_user(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    channel = discord_api.dm_channel_id(ALICE)
    await harness.adapter.send_direct(ReplyAddress("discord", str(channel), ALICE["id"]), "Good morning!")
    [call] = await discord_api.wait_for(discord_api.created_in(channel))
    assert call.json["content"] == "Good morning!"
    assert call.json["allowed_mentions"] == {"parse": [], "users": [int(ALICE["id"])]}


async def test_a_rejected_token_or_a_refused_intent_stops_with_advice(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    async with DiscordStandIn() as discord_api:
        settings = settings_for(
            llm, "openai", key_prefix, data_dir, DISCORD_TOKEN="wrong", DISCORD_API_BASE_URL=discord_api.base_url
        )
        async with open_app(settings) as app:
            assert app.services is not None
            with pytest.raises(ConfigError, match="rejected DISCORD_TOKEN"):
                await asyncio.wait_for(build_discord_adapter(app.services).run(), timeout=15)
            discord_api.token = "wrong"
            discord_api.refuse_privileged_intents = True
            with pytest.raises(ConfigError, match="Message Content Intent"):
                await asyncio.wait_for(build_discord_adapter(app.services).run(), timeout=15)
    assert discord_api.identifies, "the second run reached the gateway"


async def test_a_failing_turn_gets_a_short_notice_and_the_client_keeps_serving(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    # a damaged store: the key of the agent registry holds a string, so every turn fails on it (Qdrant being down
    # would not do: messages wait in the Redis outbox and turns go on)
    await harness.app.stores.redis.set(RedisKeys(harness.app.settings.redis_prefix).agents(), "damaged")
    for text in ("first try", "second try"):
        sent = await discord_api.send_message(ALICE, text)
        [notice] = await answer_to(discord_api, sent)
        assert notice.json["content"] == NOT_SAVED_NOTICE  # it failed before the message could be stored
