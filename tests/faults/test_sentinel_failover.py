"""A Sentinel failover while membot runs: the master dies, the Sentinel promotes its replica, and the next message
is answered (after a delay) from the new master, with what was said before it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import redis as syncredis

from adapters.console import console_message
from bot.app import open_app
from tests.faults.conftest import OwnedRedis
from tests.ops.helpers import free_port, wait_for_port
from tests.scenario import RecordingSink, eventually, settings_for
from tests.standins.llm_server import ScriptedLLMServer


async def test_a_sentinel_failover_between_two_messages_only_delays_the_answer(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path, owned_redis: OwnedRedis
) -> None:
    master = owned_redis
    replica = OwnedRedis(tmp_path / "replica", extra=("--replicaof", "127.0.0.1", str(master.port)))
    sentinel_port = free_port()
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites its config file: it must be writable
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor membot 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds membot 1000\nsentinel failover-timeout membot 5000\n"
    )
    sentinel = subprocess.Popen(  # noqa: ASYNC220 (starts at once; waited for below)
        ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.to_thread(replica.start)
        await asyncio.to_thread(wait_for_port, sentinel_port)
        watcher = syncredis.Redis(port=sentinel_port, socket_timeout=5)
        try:  # the Sentinel learns of the replica from the master's INFO (every few seconds)

            def replica_known() -> bool:
                return any(b"s_down" not in r.get(b"flags", b"") for r in watcher.sentinel_slaves("membot"))

            await eventually(lambda: asyncio.to_thread(replica_known), what="the Sentinel to know the replica")
        finally:
            watcher.close()
        url = f"redis+sentinel://127.0.0.1:{sentinel_port}/membot/0"
        # A failover usually takes 2-3 s here, but when the Sentinel finds no replica fit to promote at its first
        # try it tries again after 2 x failover-timeout (10 s): the budget covers that, as a deployment's must.
        settings = settings_for(llm, "anthropic", key_prefix, data_dir, REDIS_URL=url, MEMBOT_REDIS_RETRY_SECONDS=30)
        async with open_app(settings) as app:
            assert app.runtime is not None
            sink = RecordingSink()
            await app.runtime.handle(console_message("sam", "my name is Sam"), sink)
            synced = await asyncio.to_thread(master.client().execute_command, "WAIT", 1, 5000)
            assert synced == 1, "the replica has every write before the master goes"
            await asyncio.to_thread(master.kill)
            await app.runtime.handle(console_message("sam", "what is my name?"), sink)
            assert sink.messages == ["Got it, I'll remember that.", "Your name is Sam."]
            assert sink.notices == [], "a failover is a delay, not an outage"
            promoted = await asyncio.to_thread(replica.client().execute_command, "ROLE")
            assert promoted[0] == b"master"
    finally:
        sentinel.terminate()
        await asyncio.to_thread(sentinel.wait, 10)
        await asyncio.to_thread(replica.cleanup)
