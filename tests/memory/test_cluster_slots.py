"""On a Redis Cluster the keys of one Lua script, MULTI transaction or multi-key command must share a hash slot.

Each group below is the keys one such operation uses (see ``memory.redis.keys``); the slot is Redis Cluster's own
(CRC16 of the hash tag, ``redis.crc.key_slot``). ``tests/ops/test_redis_cluster.py`` runs them on a real cluster.
"""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from adapters.console import console_agent
from bot.core.events import AgentKey
from memory.redis.keys import RedisKeys

KEYS = RedisKeys("membot-slots")
AGENTS = [AgentKey("discord", "123", "456"), AgentKey("slack", "T0", "U1"), console_agent("sam")]


def slot(key: str) -> int:
    return key_slot(key.encode())


def agent_operations(agent: AgentKey) -> dict[str, list[str]]:
    k = KEYS
    core = [k.core_blocks(agent), k.core_limits(agent), k.meta(agent), k.core_versions(agent), k.core_version(agent)]
    queue = [k.queue(agent), k.queue_generation(agent), k.summary(agent), k.pressure_alerted(agent)]
    return {
        "core scripts (edit, ensure, rollback, reset, scrub), fenced by the lock": [
            *core,
            k.audit(agent),
            k.lock(agent),
        ],
        "working memory scripts (append, evict, pressure flag), fenced by the lock": [*queue, k.lock(agent)],
        "quarantine move script (source, quarantine, audit, queue generation)": [
            k.queue(agent),
            k.core_blocks(agent),
            k.quarantine(agent),
            k.audit(agent),
            k.queue_generation(agent),
        ],
        "core erase (MULTI: HLEN, DEL)": core,
        "working memory read, append, evict, erase (MULTI)": queue,
        "audit erase (MULTI: XLEN, DEL, XADD)": [k.audit(agent)],
        "activity record and proactive choice (MULTI)": [k.activity(agent), k.proactive(agent)],
        "proactive choice and daily counters (one DEL in erase)": [
            k.proactive(agent),
            k.proactive_sent(agent, "2030-01-01"),
            k.proactive_sent(agent, "2030-01-02"),
        ],
        "every per-agent key (one agent, one slot)": [
            *k.agent_keys(agent),
            k.audit(agent),
            k.lock(agent),
        ],
    }


SHARED_OPERATIONS = {
    "recall outbox put, ack script, bury (MULTI)": [
        KEYS.recall_outbox(),
        KEYS.recall_outbox_pending(),
        KEYS.recall_outbox_dead(),
        KEYS.recall_outbox_epochs(),
        KEYS.recall_forgotten(),
    ],
    "APScheduler job store (MULTI) and the jobs an erase removes (MULTI: HDEL, ZREM)": [
        KEYS.scheduler_jobs(),
        KEYS.scheduler_run_times(),
    ],
}


@pytest.mark.parametrize("agent", AGENTS, ids=str)
def test_each_per_agent_operation_uses_one_slot(agent: AgentKey) -> None:
    for operation, names in agent_operations(agent).items():
        assert len({slot(name) for name in names}) == 1, f"{operation}: {names} span slots"


@pytest.mark.parametrize("operation", SHARED_OPERATIONS)
def test_each_shared_operation_uses_one_slot(operation: str) -> None:
    names = SHARED_OPERATIONS[operation]
    assert len({slot(name) for name in names}) == 1, f"{operation}: {names} span slots"


def test_agents_spread_over_the_cluster_and_global_keys_are_written_apart() -> None:
    """The hash tag is the agent, not the prefix: agents land on many slots. The global indexes are not in an
    agent's slot, which is why the stores change them in commands of their own."""
    agents = [console_agent(f"user{i}") for i in range(50)]
    assert len({slot(KEYS.core_blocks(agent)) for agent in agents}) > 40
    sam = console_agent("sam")
    assert slot(KEYS.agents()) != slot(KEYS.core_blocks(sam))
    assert slot(KEYS.activity_index()) != slot(KEYS.activity(sam))
