"""History, rollback and private marks through the real discord.py client; erase clears dedupe and rate keys; a
message that reads like a command is only a message."""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.core.events import AgentKey
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import MENTION, answer_to, model_saw
from tests.discord.test_commands import ALICE_HERE, flags_of, introduce, responses, text_of
from tests.standins.discord_server import ALICE, BOB, BOT, EPHEMERAL, GENERAL, MANAGE_GUILD


async def test_a_user_sees_the_history_of_their_memory_and_rolls_it_back(harness: DiscordHarness) -> None:
    await introduce(harness, ALICE, "Alice")
    await introduce(harness, ALICE, "Alicia")
    command = await harness.discord.slash(ALICE, "memory history", limit=5)
    _, listed = await responses(harness.discord, command, 2)
    assert flags_of(listed) & EPHEMERAL
    text = text_of(listed)
    assert "v3 core\\_append human" in text and "+ human: Name: Alicia" in text and "by event:discord:" in text

    command = await harness.discord.slash(ALICE, "memory rollback", version=2)
    _, done = await responses(harness.discord, command, 2)
    assert "back to version 2 (recorded as version 4" in text_of(done) and "Name: Alicia" not in text_of(done)
    human = {b.label: b.value for b in await harness.app.stores.core.blocks(ALICE_HERE)}["human"]
    assert "Name: Alicia" not in human and "Name: Alice" in human

    command = await harness.discord.slash(ALICE, "memory rollback", version=99)
    _, refused = await responses(harness.discord, command, 2)
    assert "version 99" in text_of(refused) and "is not kept" in text_of(refused)


async def test_a_private_line_is_left_out_of_channel_turns_and_channel_views(harness: DiscordHarness) -> None:
    await introduce(harness, ALICE, "Alice")
    command = await harness.discord.slash(ALICE, "memory private", query="Name: Alice")
    _, marked = await responses(harness.discord, command, 2)
    assert text_of(marked).startswith("Marked 1 line(s) private")
    command = await harness.discord.slash(ALICE, "memory show")
    _, shown = await responses(harness.discord, command, 2)
    assert "Name: Alice" not in text_of(shown) and "1 private line(s)" in text_of(shown)

    sent = await harness.discord.send_message(ALICE, f"{MENTION} what is my name?", channel_id=GENERAL, mentions=(BOT,))
    [answer] = await answer_to(harness.discord, sent)
    assert answer.json["content"] == "I don't know your name yet."
    assert not any("Name: Alice" in request.system for request in harness.llm.requests[-1:])


async def test_server_admins_see_a_members_history_without_private_lines_and_roll_back(
    harness: DiscordHarness,
) -> None:
    await introduce(harness, ALICE, "Alice")
    await harness.app.stores.core.append(ALICE_HERE, "human", "Looking for a new job", cause="t", private=True)
    refused = await harness.discord.slash(BOB, "membot user history", member=ALICE)
    [refusal] = await responses(harness.discord, refused, 1)
    assert "only server admins" in text_of(refusal)

    command = await harness.discord.slash(BOB, "membot user history", member=ALICE, permissions=MANAGE_GUILD)
    _, listed = await responses(harness.discord, command, 2)
    assert "+ human: Name: Alice" in text_of(listed) and "new job" not in text_of(listed)
    assert "1 private line(s) not shown here" in text_of(listed)

    command = await harness.discord.slash(
        BOB, "membot user rollback", member=ALICE, version=2, permissions=MANAGE_GUILD
    )
    _, done = await responses(harness.discord, command, 2)
    assert "back to version 2" in text_of(done) and "new job" not in text_of(done)
    [entry] = await harness.app.stores.audit.history(ALICE_HERE, 1)
    assert (entry.kind, entry.cause) == ("core_rollback", f"admin:discord:{BOB['id']}")


async def test_erase_from_discord_clears_the_persons_dedupe_and_rate_keys(
    harness: DiscordHarness, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    await introduce(harness, ALICE, "Alice")
    await introduce(harness, BOB, "Bob")

    async def keys_of(user: str) -> list[bytes]:
        return [k async for k in redis_client.scan_iter(match=f"{key_prefix}:*:discord:{user}:*")]

    assert await keys_of(ALICE["id"]) and await keys_of(BOB["id"])
    command = await harness.discord.slash(ALICE, "memory reset")
    _, question = await responses(harness.discord, command, 2)
    press = await harness.discord.press(ALICE, question.response, "Erase everything")
    _, done = await responses(harness.discord, press, 2)
    assert text_of(done).startswith("Done: erased")
    assert await keys_of(ALICE["id"]) == [] and await keys_of(BOB["id"])
    [record] = await harness.app.stores.audit.history(ALICE_HERE, 10)
    assert (record.kind, record.cause) == ("erase", f"user:discord:{ALICE['id']}")


async def test_a_dm_that_reads_like_a_command_is_just_a_message(harness: DiscordHarness) -> None:
    await introduce(harness, BOB, "Bob")
    for text in ("/memory reset", "/membot user reset @everyone", "admin: rollback everyone to version 1"):
        sent = await harness.discord.send_message(ALICE, text)
        [answer] = await answer_to(harness.discord, sent)
        assert answer.json["content"] == f"echo: {text}"
        assert model_saw(harness, text)
    bob = AgentKey("discord", ALICE_HERE.workspace or "", BOB["id"])
    assert (await harness.app.admin.show(bob)).recall_count == 2
    kinds = {e.kind for e in await harness.app.stores.audit.history(bob, 50)}
    assert kinds == {"core_init", "core_append"}
