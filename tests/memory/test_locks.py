"""Per-agent locks on a real Redis: serialize one agent, not different agents, across processes too."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.core.events import AgentKey
from memory.redis.keys import RedisKeys
from memory.redis.locks import AgentLockTimeout, RedisAgentLocks
from tests.memory.helpers import ALICE, BOB

REPO = Path(__file__).resolve().parents[2]


async def _turn(locks: RedisAgentLocks, agent: AgentKey, log: list[tuple[str, str]], name: str) -> None:
    async with locks.hold(agent):
        log.append(("enter", name))
        await asyncio.sleep(0.1)
        log.append(("exit", name))


def _overlapped(log: list[tuple[str, str]]) -> bool:
    inside = 0
    for event, _ in log:
        inside += 1 if event == "enter" else -1
        if inside > 1:
            return True
    return False


async def test_same_agent_serializes_across_clients(redis_url: str, keys: RedisKeys) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]  # two "processes"
    try:
        a, b = (RedisAgentLocks(c, keys, lease_seconds=5, wait_seconds=5) for c in clients)
        log: list[tuple[str, str]] = []
        await asyncio.gather(_turn(a, ALICE, log, "1"), _turn(b, ALICE, log, "2"), _turn(a, ALICE, log, "3"))
        assert len(log) == 6
        assert not _overlapped(log)
    finally:
        for c in clients:
            await c.aclose()


async def test_different_agents_do_not_wait(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    locks = RedisAgentLocks(redis_client, keys, lease_seconds=5, wait_seconds=5)
    log: list[tuple[str, str]] = []
    started = asyncio.get_running_loop().time()
    await asyncio.gather(_turn(locks, ALICE, log, "alice"), _turn(locks, BOB, log, "bob"))
    assert _overlapped(log)
    assert asyncio.get_running_loop().time() - started < 0.19


async def test_waiting_too_long_raises_a_clear_timeout(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    locks = RedisAgentLocks(redis_client, keys, lease_seconds=5, wait_seconds=0.2)
    other_process = RedisAgentLocks(redis_client, keys, lease_seconds=5, wait_seconds=0.2)
    async with locks.hold(ALICE):
        with pytest.raises(AgentLockTimeout, match=r"agent console:alice is still busy after waiting 0\.2s"):
            async with locks.hold(ALICE):  # queued in this process behind the holder
                pass
        with pytest.raises(TimeoutError):  # polling Redis from another "process"
            async with other_process.hold(ALICE):
                pass
    async with other_process.hold(ALICE):  # free again
        pass


async def test_watchdog_keeps_the_lease_for_long_turns(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    locks = RedisAgentLocks(redis_client, keys, lease_seconds=0.3, wait_seconds=0.1)
    other = RedisAgentLocks(redis_client, keys, lease_seconds=0.3, wait_seconds=0.1)
    async with locks.hold(ALICE):
        await asyncio.sleep(1.0)  # three leases long
        assert await redis_client.exists(keys.lock(ALICE))
        with pytest.raises(AgentLockTimeout):
            async with other.hold(ALICE):
                pass
    assert not await redis_client.exists(keys.lock(ALICE))


async def test_released_when_the_body_raises(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    locks = RedisAgentLocks(redis_client, keys, lease_seconds=5, wait_seconds=0.1)
    with pytest.raises(RuntimeError, match="boom"):
        async with locks.hold(ALICE):
            raise RuntimeError("boom")
    assert not await redis_client.exists(keys.lock(ALICE))
    assert locks._local == {}
    async with locks.hold(ALICE):
        pass


async def test_lock_holds_across_processes(redis_client: aioredis.Redis, redis_url: str, key_prefix: str) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, redis.asyncio as aioredis
        from adapters.console import console_agent
        from memory.redis.keys import RedisKeys
        from memory.redis.locks import RedisAgentLocks

        async def main():
            client = aioredis.Redis.from_url({redis_url!r})
            locks = RedisAgentLocks(client, RedisKeys({key_prefix!r}), lease_seconds=5)
            async with locks.hold(console_agent("alice")):
                print("held", flush=True)
                await asyncio.sleep(0.8)
            await client.aclose()

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=REPO, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"held"
    locks = RedisAgentLocks(redis_client, RedisKeys(key_prefix), lease_seconds=5, wait_seconds=10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with locks.hold(ALICE):
        waited = loop.time() - started
        assert await child.wait() == 0  # the child released before we got in
    assert 0.5 < waited < 5
