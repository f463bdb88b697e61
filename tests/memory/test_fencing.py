"""Fencing on a real Redis: a holder whose lock was taken over writes nothing more, in every store."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.core.events import Scope
from bot.core.memory_types import ArchivalEntry, Fence, LockLost
from bot.llm.types import ChatMessage
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.store import QdrantStore
from memory.redis.core import RedisCoreMemory
from memory.redis.fencing import Fencing
from memory.redis.keys import RedisKeys
from memory.redis.locks import RedisAgentLocks
from memory.redis.outbox import RecallOutbox
from memory.redis.working import RedisWorkingMemory
from tests.memory.helpers import ALICE, BOB, T0, recall_entry

REPO = Path(__file__).resolve().parents[2]


async def _snapshot(redis: aioredis.Redis, keys: RedisKeys) -> dict[str, object]:
    """Everything a turn of ALICE may write in Redis."""
    return {
        "core": await redis.hgetall(keys.core_blocks(ALICE)),
        "version": await redis.get(keys.core_version(ALICE)),
        "queue": await redis.lrange(keys.queue(ALICE), 0, -1),
        "summary": await redis.get(keys.summary(ALICE)),
        "pressure": await redis.get(keys.pressure_alerted(ALICE)),
        "outbox": await redis.xlen(keys.recall_outbox()),
        "audit": await redis.xlen(keys.audit(ALICE)),
    }


async def test_a_holder_whose_lock_was_taken_over_writes_nothing(
    redis_client: aioredis.Redis, keys: RedisKeys, store: QdrantStore, embedder: HashingEmbedder
) -> None:
    core = RedisCoreMemory(redis_client, keys)
    working = RedisWorkingMemory(redis_client, keys)
    outbox = RecallOutbox(redis_client, keys)
    archival = QdrantArchivalMemory(store.archival, embedder, fencing=Fencing(redis_client, keys))
    first, second = RedisAgentLocks(redis_client, keys), RedisAgentLocks(redis_client, keys)
    async with first.hold(ALICE) as stale:
        await core.ensure(ALICE, {"human": "Name: Alice"}, cause="t", fence=stale)
        await working.append(ALICE, [ChatMessage("user", "hello")], fence=stale)
        await redis_client.delete(keys.lock(ALICE))  # the lease ran out while this holder stalled
        async with second.hold(ALICE) as current:
            assert current.number > stale.number and current.token != stale.token
            before = await _snapshot(redis_client, keys)
            refused = [
                core.append(ALICE, "human", "Likes tea", cause="t", fence=stale),
                core.replace(ALICE, "human", "Alice", "Alicia", cause="t", fence=stale),
                core.ensure(ALICE, {"persona": "I am membot"}, cause="t", fence=stale),
                working.append(ALICE, [ChatMessage("assistant", "late words")], fence=stale),
                working.evict(ALICE, 1, "summary", "public", fence=stale),
                working.set_pressure_alerted(ALICE, fence=stale),
                outbox.put([recall_entry(ALICE, "late reply", role="assistant")], fence=stale),
                archival.insert(ArchivalEntry(ALICE, "a late note", T0, Scope.PRIVATE), fence=stale),
            ]
            for write in refused:
                with pytest.raises(LockLost, match="lock was lost"):
                    await write
            assert await _snapshot(redis_client, keys) == before
            assert await archival.count(ALICE) == 0
            # the current holder, and unfenced (admin) writes, go through
            await core.append(ALICE, "human", "Likes tea", cause="t", fence=current)
            await working.append(ALICE, [ChatMessage("assistant", "fresh")], fence=current)
            assert (await archival.insert(ArchivalEntry(ALICE, "a note", T0), fence=current)).stored
            await working.append(ALICE, [ChatMessage("user", "admin")])
    assert [m.content for m in await working.messages(ALICE)] == ["hello", "fresh", "admin"]
    assert not await redis_client.exists(keys.lock(ALICE))


async def test_the_stale_holder_leaving_keeps_the_new_holders_lock(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    first, second = RedisAgentLocks(redis_client, keys), RedisAgentLocks(redis_client, keys)
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def new_holder() -> None:
        async with second.hold(ALICE):
            entered.set()
            await leave.wait()

    async with first.hold(ALICE):
        await redis_client.delete(keys.lock(ALICE))
        task = asyncio.create_task(new_holder())
        await entered.wait()
    assert await redis_client.exists(keys.lock(ALICE)), "the stale holder must not delete the new holder's lock"
    leave.set()
    await task


def test_a_fence_guards_only_its_own_agent() -> None:
    from bot.core.memory_types import fence_token

    with pytest.raises(ValueError, match="cannot guard a write of"):
        fence_token(Fence(ALICE, "1:x"), BOB)


async def test_a_waiter_is_told_once_when_the_agent_stays_busy(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    holder = RedisAgentLocks(redis_client, keys)
    waiter = RedisAgentLocks(redis_client, keys, busy_notice_seconds=0.1)
    told: list[float] = []
    loop = asyncio.get_running_loop()

    async def busy() -> None:
        told.append(loop.time())

    entered = asyncio.Event()

    async def wait_for_alice() -> None:
        async with waiter.hold(ALICE, on_wait=busy):
            entered.set()

    async with holder.hold(ALICE):
        started = loop.time()
        task = asyncio.create_task(wait_for_alice())
        await asyncio.sleep(0.5)
        assert len(told) == 1 and told[0] - started >= 0.1
        assert not entered.is_set()
    await task
    # a lock that is free at once tells nobody anything
    async with waiter.hold(BOB, on_wait=busy):
        await asyncio.sleep(0.2)
    assert len(told) == 1


async def test_a_killed_holder_frees_the_agent_within_one_lease(
    redis_client: aioredis.Redis, redis_url: str, key_prefix: str
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, redis.asyncio as aioredis
        from adapters.console import console_agent
        from memory.redis.keys import RedisKeys
        from memory.redis.locks import RedisAgentLocks

        async def main():
            client = aioredis.Redis.from_url({redis_url!r})
            locks = RedisAgentLocks(client, RedisKeys({key_prefix!r}), lease_seconds=1.5, renew_seconds=0.5)
            async with locks.hold(console_agent("alice")):
                print("held", flush=True)
                await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"held"
    await asyncio.sleep(1.2)  # the watchdog renewed the lease at least once: it is not just the first lease
    assert await redis_client.pttl(RedisKeys(key_prefix).lock(ALICE)) > 500
    child.send_signal(signal.SIGKILL)
    await child.wait()
    loop = asyncio.get_running_loop()
    killed = loop.time()
    locks = RedisAgentLocks(redis_client, RedisKeys(key_prefix), lease_seconds=1.5, wait_seconds=10)
    async with locks.hold(ALICE):
        waited = loop.time() - killed
    assert waited < 1.5 + 0.5
