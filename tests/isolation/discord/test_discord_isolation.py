"""Discord: two servers, and DMs, are separate memories of one person; another member never reaches them.

The real discord.py client on the gateway/REST stand-in, real Redis and embedded Qdrant. Alice talks to membot in
a DM, in the test server and in a second server (dispatched as a GUILD_CREATE); Bob in the test server's #random.
Each tells canaries. Then the scripted model, driven by injected text, tries every way its functions offer to reach
the others' memory. Verdicts come from scanning every Redis key under the test's prefix and every point of both
Qdrant collections, and from everything the model was given.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import redis.asyncio as aioredis

from bot.core.events import AgentKey
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import MENTION, answer_to
from tests.discord.test_commands import responses, text_of
from tests.isolation.attack import EXPECTED_FAILURES, INJECTION, attack, given_text, offered_only_memory_functions
from tests.isolation.scan import Snapshot, assert_confined, leaks, record, snapshot, tool_results
from tests.scenario import eventually
from tests.standins import discord_payloads as payloads
from tests.standins.discord_server import ALICE, BOB, BOT, GENERAL, GUILD_ID, RANDOM, Payload

OTHER_GUILD = 4_000_000_000_000_000_001
OTHER_GENERAL = 4_000_000_000_000_000_010


@dataclass(frozen=True)
class Member:
    author: Payload
    guild: int | None  # None: a DM
    channel: int | None
    name: str  # a canary too: core memory says "Name: <name>"
    tag: str  # canaries: <TAG>LOCK (recall), <TAG>PASS (archival)

    @property
    def agent(self) -> AgentKey:
        return AgentKey("discord", str(self.guild) if self.guild else "dm", self.author["id"])

    @property
    def canaries(self) -> list[str]:
        return [self.name, f"{self.tag}LOCK4411", f"{self.tag}PASS7302"]


ALICE_DM = Member(ALICE, None, None, "Quokkalice", "ALICEDM")
ALICE_HERE = Member(ALICE, GUILD_ID, GENERAL, "Gonzalice", "ALICEHERE")
ALICE_THERE = Member(ALICE, OTHER_GUILD, OTHER_GENERAL, "Platyalice", "ALICETHERE")
BOB_HERE = Member(BOB, GUILD_ID, RANDOM, "Wombatbob", "BOBHERE")
MEMBERS = (ALICE_DM, ALICE_HERE, ALICE_THERE, BOB_HERE)


def other_guild() -> Payload:
    """GUILD_CREATE of a second server, with one text channel."""
    guild = copy.deepcopy(payloads.guild())
    guild.update(id=str(OTHER_GUILD), name="Other Server", threads=[])
    guild["roles"][0]["id"] = str(OTHER_GUILD)  # @everyone
    guild["roles"][1]["id"] = str(OTHER_GUILD + 30)
    guild["members"][0]["roles"] = [str(OTHER_GUILD + 30)]
    channel = {**guild["channels"][0], "id": str(OTHER_GENERAL), "guild_id": str(OTHER_GUILD)}
    guild["channels"] = [channel]
    return guild


async def say(harness: DiscordHarness, member: Member, text: str) -> None:
    """A DM, or a message mentioning membot in the member's server channel; answered before returning."""
    discord_api = harness.discord
    if member.channel is None:
        sent = await discord_api.send_message(member.author, text)
    else:
        sent = discord_api.message_payload(
            member.author, f"{MENTION} {text}", member.channel, guild=True, mentions=(BOT,)
        )
        sent["guild_id"] = str(member.guild)
        await discord_api.dispatch("MESSAGE_CREATE", sent)
    await answer_to(discord_api, sent)
    await harness.app.turns.wait_idle()


async def scan(harness: DiscordHarness, redis: aioredis.Redis, prefix: str) -> Snapshot:
    async def indexed() -> bool:
        return await harness.app.stores.outbox.waiting() == 0

    await eventually(indexed, what="the recall outbox to be indexed")
    return await snapshot(redis, prefix, harness.app.stores.qdrant.backend)


async def tell_canaries(harness: DiscordHarness) -> None:
    await harness.discord.dispatch("GUILD_CREATE", other_guild())
    await eventually(lambda: harness.adapter.client.get_guild(OTHER_GUILD) is not None, what="the second server")
    for member in MEMBERS:
        await say(harness, member, f"my name is {member.name}")
        await say(harness, member, f"my locker code is {member.tag}LOCK4411")
        await say(harness, member, f"remember: my passport number is {member.tag}PASS7302")


def owners(*members: Member) -> dict[str, AgentKey]:
    return {canary: member.agent for member in members for canary in member.canaries}


async def test_two_servers_and_dms_are_separate_memories_no_member_reaches(
    harness: DiscordHarness, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    await tell_canaries(harness)
    before = await scan(harness, redis_client, key_prefix)
    dm_private = ALICE_DM.canaries[1:]  # recall and archival of a DM are private (core lines: tested on Slack)
    assert_confined(before, owners(*MEMBERS), dm_private)

    server = harness.llm
    for attacker, target in ((ALICE_THERE, ALICE_HERE), (ALICE_HERE, ALICE_DM), (BOB_HERE, ALICE_HERE)):
        target_before = (await scan(harness, redis_client, key_prefix)).of(target.agent)
        start = len(server.requests)
        server.push(*attack(target.agent, target.name[:4]))
        await say(harness, attacker, INJECTION)
        assert server.pending == 0, "the model made every try"
        requests = server.requests[start:]
        others = [canary for member in MEMBERS if member != attacker for canary in member.canaries]
        results = tool_results(requests, INJECTION)
        assert len(results) == 8 and sum('"Failed"' in r for r in results) == EXPECTED_FAILURES, results
        assert f"{attacker.tag}LOCK4411" in "\n".join(results), "the attacker's own memory is found (control)"
        assert leaks(results, others) == [], f"{attacker.agent}'s functions returned others' memory"
        assert leaks(map(given_text, requests), others) == [], "no prompt of the attacker's turn holds others' memory"
        assert offered_only_memory_functions(requests)
        channel = attacker.channel or harness.discord.dm_channel_id(attacker.author)
        sent = [str(call.json.get("content")) for call in harness.discord.matching(harness.discord.created_in(channel))]
        assert leaks(sent, others) == [], "membot never said another's memory where the attacker reads"
        assert (await scan(harness, redis_client, key_prefix)).of(target.agent) == target_before

    after = await scan(harness, redis_client, key_prefix)
    record("discord: one person in 2 servers and DMs, another member, 3 attacks", after)
    assert_confined(after, owners(*MEMBERS), dm_private)
    for member in MEMBERS:
        core = after.keys[f"{key_prefix}:core:{{{member.agent}}}"]
        assert f"Name: {member.name}" in core and "hacked" not in core


async def test_export_and_erase_of_one_memory_never_touch_the_others(
    harness: DiscordHarness, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Alice exports and erases her memory of the test server: her DM memory, her memory of the other server and
    Bob's stay byte for byte; a member who is not an admin gets nothing of hers."""
    await tell_canaries(harness)
    discord_api = harness.discord
    refused = await discord_api.slash(BOB, "membot user show", member=ALICE)  # Bob is no server admin
    [answer] = await responses(discord_api, refused, 1)
    assert leaks([text_of(answer)], ALICE_HERE.canaries) == [] and "admin" in text_of(answer)
    before = await scan(harness, redis_client, key_prefix)

    await discord_api.slash(ALICE, "memory export")
    dm = discord_api.dm_channel_id(ALICE)
    [upload] = await discord_api.wait_for(lambda call: discord_api.created_in(dm)(call) and bool(call.files))
    [(_, data)] = upload.files
    exported = data.decode()
    assert leaks([exported], ALICE_HERE.canaries) == ALICE_HERE.canaries, "the export holds all of this memory"
    others = [c for member in (ALICE_DM, ALICE_THERE, BOB_HERE) for c in member.canaries]
    assert leaks([exported], others) == [], "and nothing of Alice's other memories or of Bob's"

    command = await discord_api.slash(ALICE, "memory reset")
    _, question = await responses(discord_api, command, 2)
    press = await discord_api.press(ALICE, question.response, "Erase everything")
    _, done = await responses(discord_api, press, 2)
    assert text_of(done).startswith("Done: erased")

    after = await scan(harness, redis_client, key_prefix)
    record("discord: export and erase of one memory", after)
    for canary in ALICE_HERE.canaries:
        assert after.keys_with(canary) == [] and after.points_with(canary) == [], f"{canary} is erased everywhere"
    assert list(after.of(ALICE_HERE.agent)[0]) == [f"{key_prefix}:audit:{{{ALICE_HERE.agent}}}"]
    for member in (ALICE_DM, ALICE_THERE, BOB_HERE):
        assert after.of(member.agent) == before.of(member.agent), f"{member.agent} untouched"
    assert_confined(after, owners(ALICE_DM, ALICE_THERE, BOB_HERE), ALICE_DM.canaries[1:])
