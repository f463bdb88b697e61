"""Core memory versions, private marks and their audit entries on a real Redis (memory.redis.core's Lua scripts)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from bot.core.memory_types import AuditKind, MemoryEditError, VersionNotKept
from memory.redis.audit import RedisAuditLog
from memory.redis.core import RedisCoreMemory
from memory.redis.keys import RedisKeys
from tests.memory.helpers import ALICE, BOB

DEFAULTS = {"persona": "I am membot.", "human": ""}


@pytest.fixture
def audit(redis_client: aioredis.Redis, keys: RedisKeys) -> RedisAuditLog:
    return RedisAuditLog(redis_client, keys)


async def human(core: RedisCoreMemory) -> str:
    return {b.label: b.value for b in await core.blocks(ALICE)}["human"]


async def test_every_core_write_is_a_version_with_its_cause_and_an_audit_entry(
    core: RedisCoreMemory, audit: RedisAuditLog
) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="event:console:m1")
    await core.ensure(ALICE, DEFAULTS, cause="event:console:m2")  # nothing created: no version
    await core.append(ALICE, "human", "Name: Alice", cause="event:console:m2")
    await core.replace(ALICE, "human", "Alice", "Alicia", cause="user:discord:42")
    await core.replace(ALICE, "human", "Alicia", "Alicia", cause="user:discord:42")  # no change: no version
    assert await core.version(ALICE) == 3
    versions = await core.versions(ALICE)
    assert [(v.version, v.kind, v.cause, v.label) for v in versions] == [
        (1, "core_init", "event:console:m1", None),
        (2, "core_append", "event:console:m2", "human"),
        (3, "core_replace", "user:discord:42", "human"),
    ]
    assert versions[0].blocks == DEFAULTS
    assert versions[2].blocks == {"persona": "I am membot.", "human": "Name: Alicia"}
    entries = await audit.history(ALICE, 10)
    assert [(e.kind, e.version, e.label, e.cause) for e in entries] == [
        ("core_replace", 3, "human", "user:discord:42"),
        ("core_append", 2, "human", "event:console:m2"),
        ("core_init", 1, None, "event:console:m1"),
    ]
    assert await core.versions(BOB) == [] and await audit.history(BOB, 10) == []


async def test_a_failed_edit_makes_no_version_and_no_entry(core: RedisCoreMemory, audit: RedisAuditLog) -> None:
    await core.ensure(ALICE, {"human": "x" * 190}, cause="t")
    with pytest.raises(MemoryEditError):
        await core.append(ALICE, "human", "y" * 20, cause="t")
    with pytest.raises(MemoryEditError):
        await core.replace(ALICE, "human", "absent", "z", cause="t")
    assert await core.version(ALICE) == 1 and len(await audit.history(ALICE, 10)) == 1


async def test_rollback_restores_a_version_as_a_new_audited_version(
    core: RedisCoreMemory, audit: RedisAuditLog
) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="t")
    await core.append(ALICE, "human", "Likes tea", cause="t")
    await core.replace(ALICE, "human", "Likes tea", 'Hates tea, loves «café» "quoted" \\ emoji 🐕', cause="t")
    tricky = await human(core)
    await core.append(ALICE, "persona", "I am grumpy.", cause="event:slack:1")
    assert await core.rollback(ALICE, 2, cause="cli") == 5
    assert {b.label: b.value for b in await core.blocks(ALICE)} == {"persona": "I am membot.", "human": "Likes tea"}
    [entry, *_] = await audit.history(ALICE, 1)
    assert (entry.kind, entry.version, entry.cause, dict(entry.detail)) == ("core_rollback", 5, "cli", {"to": 2})
    assert await core.rollback(ALICE, 3, cause="cli") == 6
    assert await human(core) == tricky, "text survives the JSON round trip byte for byte"


async def test_only_the_newest_versions_are_kept_and_a_pruned_one_is_refused_by_name(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    core = RedisCoreMemory(redis_client, keys, block_limit=2000, versions_kept=3)
    await core.ensure(ALICE, DEFAULTS, cause="t")
    for i in range(5):
        await core.append(ALICE, "human", f"fact {i}", cause="t")
    assert [v.version for v in await core.versions(ALICE)] == [4, 5, 6]
    with pytest.raises(VersionNotKept, match="version 2 of console:alice is not kept; versions 4 to 6 are"):
        await core.rollback(ALICE, 2, cause="t")
    with pytest.raises(VersionNotKept, match="has no core memory versions"):
        await core.rollback(BOB, 1, cause="t")
    assert await core.versions(ALICE, [1, 5, 9]) == [v for v in await core.versions(ALICE) if v.version == 5]


async def test_reset_keeps_versions_so_core_memory_can_be_rolled_back(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="t")
    await core.append(ALICE, "human", "Name: Alice", cause="t")
    assert await core.reset(ALICE, cause="cli") == (2, 3)
    assert not await core.exists(ALICE) and await core.last_modified(ALICE) is None
    assert (await core.versions(ALICE, [3]))[0].blocks == {}
    assert ALICE not in await core.agents()
    await core.rollback(ALICE, 2, cause="cli")
    assert await human(core) == "Name: Alice" and ALICE in await core.agents()
    assert await core.erase(ALICE) == 2
    assert await core.version(ALICE) == 0 and await core.versions(ALICE) == []


async def test_private_marks_append_and_unmark_whole_lines(core: RedisCoreMemory, audit: RedisAuditLog) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="t")
    await core.append(ALICE, "human", "Has asthma\nSees Dr. Lee", cause="t", private=True)
    await core.append(ALICE, "human", "Likes tea", cause="t")
    await core.append(ALICE, "human", "Likes tea and cake", cause="t")
    assert await human(core) == "[private] Has asthma\n[private] Sees Dr. Lee\nLikes tea\nLikes tea and cake"
    await core.mark(ALICE, "human", "Likes tea", True, cause="user:slack:U1")
    assert await human(core) == "[private] Has asthma\n[private] Sees Dr. Lee\n[private] Likes tea\nLikes tea and cake"
    await core.mark(ALICE, "human", "[private] Has asthma", False, cause="user:slack:U1")
    assert (await human(core)).startswith("Has asthma\n")
    before = await core.version(ALICE)
    await core.mark(ALICE, "human", "Has asthma", False, cause="t")  # already public: nothing changes
    assert await core.version(ALICE) == before
    with pytest.raises(MemoryEditError, match="not in block"):
        await core.mark(ALICE, "human", "Likes", True, cause="t")  # whole lines only
    entry = (await audit.history(ALICE, 2))[-1]  # the mark before the unmark
    assert (entry.kind, dict(entry.detail)) == (AuditKind.CORE_MARK, {"private": True})


async def test_a_public_context_replace_never_touches_private_lines(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": "Lives in Berlin\n[private] Therapist in Berlin\nWorks in Berlin"}, cause="t")
    block = await core.replace(ALICE, "human", "Berlin", "Paris", cause="t", public_only=True)
    assert block.value == "Lives in Paris\n[private] Therapist in Berlin\nWorks in Paris"
    with pytest.raises(MemoryEditError, match="not in block"):
        await core.replace(ALICE, "human", "Therapist", "Doctor", cause="t", public_only=True)
    with pytest.raises(MemoryEditError, match="not in block"):  # the model saw the two lines as adjacent
        await core.replace(ALICE, "human", "Paris\nWorks", "x", cause="t", public_only=True)
    block = await core.replace(ALICE, "human", "Therapist", "Doctor", cause="t")
    assert "[private] Doctor in Berlin" in block.value


async def test_scrub_removes_forgotten_lines_from_every_kept_version(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="t")
    await core.append(ALICE, "human", "Passport X123", cause="t", private=True)
    await core.append(ALICE, "human", "Likes tea", cause="t")
    await core.replace(ALICE, "human", "[private] Passport X123", "", cause="t")
    assert await core.scrub(ALICE, [("human", "[private] Passport X123")]) == 2
    assert all("X123" not in "".join(v.blocks.values()) for v in await core.versions(ALICE))
    await core.rollback(ALICE, 3, cause="t")
    assert await human(core) == "Likes tea"
    assert await core.scrub(ALICE, [("human", "never there")]) == 0
