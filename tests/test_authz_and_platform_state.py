"""Authorization decisions, Redis rate limits / dedupe / channel modes, and forget through MemoryAdmin."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from adapters.console import console_agent, console_message
from bot.admin.authz import Action, Actor, Authorizer, Forbidden
from bot.app import open_app
from bot.core.events import AgentKey
from memory.redis.keys import RedisKeys
from memory.redis.platform_state import RedisChannelModes, RedisThrottle
from tests.scenario import RecordingSink, settings_for
from tests.standins.brain import Brain
from tests.standins.llm_server import ScriptedLLMServer

GUILD_MEMBER = AgentKey("discord", "g1", "u2")
DM_AGENT = AgentKey("discord", "dm", "u2")


@pytest.mark.parametrize("action", sorted(Action))
def test_users_manage_only_their_own_memory(action: Action) -> None:
    authz = Authorizer(frozenset())
    me = Actor("discord", "u2", "g1")
    if action is Action.CHANNEL_MODE:
        with pytest.raises(Forbidden):
            authz.check(me, action)
        return
    authz.check(me, action, GUILD_MEMBER)
    with pytest.raises(Forbidden):
        authz.check(Actor("discord", "u3", "g1"), action, GUILD_MEMBER)


def test_platform_admins_act_within_their_server_but_never_on_dm_memory() -> None:
    authz = Authorizer(frozenset())
    admin = Actor("discord", "boss", "g1", is_platform_admin=True)
    authz.check(admin, Action.SHOW, GUILD_MEMBER)
    authz.check(admin, Action.RESET, GUILD_MEMBER)
    authz.check(admin, Action.CHANNEL_MODE)
    with pytest.raises(Forbidden):
        authz.check(admin, Action.EXPORT, GUILD_MEMBER)
    with pytest.raises(Forbidden):
        authz.check(admin, Action.SHOW, DM_AGENT)
    with pytest.raises(Forbidden):
        authz.check(Actor("discord", "boss", "g9", is_platform_admin=True), Action.SHOW, GUILD_MEMBER)


def test_bot_admins_may_do_everything() -> None:
    authz = Authorizer(frozenset({"root"}))
    for action in Action:
        authz.check(Actor("slack", "root", "T1"), action, DM_AGENT)


async def test_rate_limit_dedupe_and_channel_modes(redis_client: aioredis.Redis, key_prefix: str) -> None:
    keys = RedisKeys(key_prefix)
    throttle = RedisThrottle(redis_client, keys)
    assert [await throttle.allow("discord:u1", 3) for _ in range(4)] == [True, True, True, False]
    assert await throttle.allow("discord:u2", 3), "limits are per subject"
    assert await throttle.first_time("discord:u1", "m1") and not await throttle.first_time("discord:u1", "m1")
    modes = RedisChannelModes(redis_client, keys)
    assert await modes.get("discord", "c1") == "mention"
    await modes.set("discord", "c1", "always")
    assert await modes.get("discord", "c1") == "always"
    await modes.set("discord", "c1", "mention")
    assert await modes.get("discord", "c1") == "mention"
    with pytest.raises(ValueError, match="unknown channel mode"):
        await modes.set("discord", "c1", "sometimes")


async def test_forget_removes_matching_core_lines_recall_and_archival(key_prefix: str, data_dir: Path) -> None:
    with ScriptedLLMServer(Brain()) as llm:
        async with open_app(settings_for(llm, "openai", key_prefix, data_dir)) as app:
            assert app.runtime is not None
            sink = RecordingSink()
            await app.runtime.handle(console_message("fay", "my name is Fay"), sink)
            await app.runtime.handle(console_message("fay", "remember: Fay's passport number is X123"), sink)
            agent = console_agent("fay")
            assert await app.admin.forget_candidates(agent, "zebras") == [], "only entries about the query"
            candidates = await app.admin.forget_candidates(agent, "Fay")
            stores = {c.store for c in candidates}
            assert {"core:human", "recall", "archival"} <= stores
            removed = await app.admin.forget(agent, candidates, cause="test")
            assert removed == len(candidates)
            human = {b.label: b.value for b in await app.stores.core.blocks(agent)}["human"]
            assert "Name: Fay" not in human
            assert await app.stores.archival.count(agent) == 0
