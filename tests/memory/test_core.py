"""Core memory blocks on a real Redis: limits, advice-bearing errors, atomic edits, isolation, export/erase."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from bot.core.memory_types import MemoryEditError
from memory.redis.core import RedisCoreMemory
from memory.redis.keys import RedisKeys
from tests.memory.helpers import ALICE, BOB

DEFAULTS = {"persona": "I am membot.", "human": ""}


async def test_ensure_creates_missing_blocks_only(core: RedisCoreMemory) -> None:
    assert not await core.exists(ALICE)
    await core.ensure(ALICE, DEFAULTS, cause="test")
    await core.append(ALICE, "human", "Name: Alice", cause="test")
    await core.ensure(ALICE, {"persona": "changed", "human": "changed", "notes": "new block"}, cause="test")
    blocks = {b.label: b for b in await core.blocks(ALICE)}
    assert [b.label for b in await core.blocks(ALICE)] == ["persona", "human", "notes"]
    assert blocks["persona"].value == "I am membot."
    assert blocks["human"].value == "Name: Alice"
    assert blocks["notes"].value == "new block"
    assert blocks["human"].limit == 200
    assert await core.exists(ALICE)
    assert ALICE in await core.agents()


async def test_default_over_the_limit_is_kept_whole_and_must_be_shortened(
    core: RedisCoreMemory, caplog: pytest.LogCaptureFixture
) -> None:
    await core.ensure(ALICE, {"human": "x" * 190 + " long default"}, cause="test")  # 203 characters
    assert "over its limit of 200" in caplog.text
    assert (await core.blocks(ALICE))[0].chars == 203
    with pytest.raises(MemoryEditError, match="would be 203/200"):
        await core.replace(ALICE, "human", "long", "wide", cause="test")
    assert (await core.replace(ALICE, "human", " long default", "", cause="test")).chars == 190


async def test_append_adds_a_line_and_updates_last_modified(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="test")
    created = await core.last_modified(ALICE)
    assert created is not None and created.tzinfo is not None
    block = await core.append(ALICE, "persona", "I like puns.", cause="test")
    assert block.value == "I am membot.\nI like puns."
    assert block.chars == len(block.value)
    first = await core.append(ALICE, "human", "Lives in Lyon.", cause="test")
    assert first.value == "Lives in Lyon."  # no leading newline on an empty block
    modified = await core.last_modified(ALICE)
    assert modified is not None and modified >= created
    assert modified <= datetime.now(UTC)


async def test_append_over_the_limit_fails_with_advice_and_changes_nothing(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": "x" * 150}, cause="test")
    with pytest.raises(MemoryEditError) as err:
        await core.append(ALICE, "human", "y" * 60, cause="test")
    assert str(err.value) == (
        "core_memory_append failed: block 'human' would be 211/200 characters. Shorten it with "
        "core_memory_replace, or move details to archival_memory_insert, then try again."
    )
    assert (await core.blocks(ALICE))[0].value == "x" * 150


async def test_limit_counts_characters_not_bytes(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": ""}, cause="test")
    block = await core.append(ALICE, "human", "é" * 150 + "🐕" * 50, cause="test")  # 200 chars, 500 bytes
    assert block.chars == 200
    with pytest.raises(MemoryEditError, match="would be 201/200"):
        await core.replace(ALICE, "human", "é🐕", "é🐕🐕", cause="test")  # the one boundary between the two runs
    with pytest.raises(MemoryEditError, match="would be 350/200"):
        await core.replace(ALICE, "human", "é", "éé", cause="test")


async def test_unknown_label_lists_valid_labels(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="test")
    with pytest.raises(MemoryEditError) as err:
        await core.append(ALICE, "user", "Name: Alice", cause="test")
    assert "no core memory block 'user'" in str(err.value)
    assert "Valid labels: persona, human" in str(err.value)
    with pytest.raises(MemoryEditError, match="Valid labels: persona, human"):
        await core.replace(ALICE, "usr", "a", "b", cause="test")


async def test_edit_before_ensure_says_memory_is_not_set_up(core: RedisCoreMemory) -> None:
    with pytest.raises(MemoryEditError, match="not set up"):
        await core.append(ALICE, "human", "hello", cause="test")


async def test_replace_replaces_every_occurrence(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": "Likes cats. Owns two cats."}, cause="test")
    block = await core.replace(ALICE, "human", "cats", "dogs", cause="test")
    assert block.value == "Likes dogs. Owns two dogs."
    block = await core.replace(ALICE, "human", " Owns two dogs.", "", cause="test")
    assert block.value == "Likes dogs."


async def test_replace_treats_old_text_literally(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": "Budget: $5 (approx.) [maybe] 100%"}, cause="test")
    block = await core.replace(ALICE, "human", "$5 (approx.) [maybe] 100%", "%d .* ^$", cause="test")
    assert block.value == "Budget: %d .* ^$"


async def test_replace_missing_text_says_to_copy_exact_text(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": "Name: Alice"}, cause="test")
    with pytest.raises(MemoryEditError) as err:
        await core.replace(ALICE, "human", "name: alice", "Name: Alicia", cause="test")
    message = str(err.value)
    assert message.startswith("core_memory_replace failed: the text 'name: alice' is not in block 'human'.")
    assert "Copy the exact text from the block" in message
    assert (await core.blocks(ALICE))[0].value == "Name: Alice"


async def test_empty_content_and_empty_old_text_fail(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="test")
    with pytest.raises(MemoryEditError, match="content is empty"):
        await core.append(ALICE, "human", "  \n", cause="test")
    with pytest.raises(MemoryEditError, match="old text is empty"):
        await core.replace(ALICE, "human", "", "x", cause="test")


async def test_fifty_concurrent_appends_are_all_kept(redis_url: str, keys: RedisKeys) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(5)]  # several connections, like processes
    try:
        stores = [RedisCoreMemory(c, keys, block_limit=2000) for c in clients]
        await stores[0].ensure(ALICE, {"human": ""}, cause="test")
        lines = [f"fact {i:02d}" for i in range(50)]
        await asyncio.gather(
            *(stores[i % 5].append(ALICE, "human", line, cause="test") for i, line in enumerate(lines))
        )
        value = (await stores[0].blocks(ALICE))[0].value
        assert sorted(value.split("\n")) == lines
        assert await stores[0].version(ALICE) == 51, "every edit is its own version, none lost"
    finally:
        for c in clients:
            await c.aclose()


async def test_concurrent_appends_never_exceed_the_limit(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": ""}, cause="test")
    results = await asyncio.gather(
        *(core.append(ALICE, "human", "z" * 29, cause="test") for _ in range(20)), return_exceptions=True
    )
    stored = [r for r in results if not isinstance(r, BaseException)]
    assert len(stored) == 6  # 6*29 + 5 newlines = 179; a 7th line would make 209 > 200
    assert all(isinstance(r, MemoryEditError) for r in results if isinstance(r, BaseException))
    assert (await core.blocks(ALICE))[0].chars == 179


async def test_set_limit_overrides_one_agents_block(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": "x" * 100}, cause="test")
    await core.ensure(BOB, {"human": ""}, cause="test")
    await core.set_limit(ALICE, "human", 500)
    assert (await core.append(ALICE, "human", "y" * 300, cause="test")).limit == 500
    assert (await core.blocks(BOB))[0].limit == 200
    with pytest.raises(ValueError, match="already holds"):
        await core.set_limit(ALICE, "human", 10)


async def test_agents_are_isolated(core: RedisCoreMemory) -> None:
    await core.ensure(ALICE, {"human": "Alice's secret"}, cause="test")
    await core.ensure(BOB, {"human": ""}, cause="test")
    await core.append(BOB, "human", "Bob likes chess", cause="test")
    assert [b.value for b in await core.blocks(BOB)] == ["Bob likes chess"]
    with pytest.raises(MemoryEditError, match="not in block"):
        await core.replace(BOB, "human", "Alice's secret", "stolen", cause="test")
    assert [b.value for b in await core.blocks(ALICE)] == ["Alice's secret"]


async def test_export_then_erase_leaves_nothing(
    core: RedisCoreMemory, redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    await core.ensure(ALICE, DEFAULTS, cause="test")
    await core.ensure(BOB, DEFAULTS, cause="test")
    exported = await core.export(ALICE)
    assert {"kind": "core_block", "label": "persona", "value": "I am membot.", "limit": 200} in exported
    assert any(item["kind"] == "core_meta" and "created" in item for item in exported)
    assert await core.erase(ALICE) == 2
    assert await core.blocks(ALICE) == []
    assert not await core.exists(ALICE)
    assert await core.last_modified(ALICE) is None
    assert await core.export(ALICE) == []
    assert await core.agents() == [BOB]
    assert not await redis_client.exists(*[k for k in keys.agent_keys(ALICE)])
    assert await core.erase(ALICE) == 0
    assert len(await core.blocks(BOB)) == 2
