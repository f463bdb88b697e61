"""The stores satisfy the narrow ports of ``bot.core.ports``, ``bot.admin.ports`` and ``bot.runtime.heartbeat_ports``
(what memory/ may import: tests/test_architecture.py). ``make lint`` type-checks this file with mypy."""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.admin.ports import (
    ActivityAdmin,
    ArchivalAdmin,
    AuditHistory,
    AuditTrail,
    CoreAdmin,
    CoreRepair,
    PersonState,
    Quarantine,
    RecallAdmin,
    WorkingAdmin,
)
from bot.core.ports import (
    ActivityRecorder,
    AgentLocks,
    ArchivalMemory,
    AuditLog,
    ChannelModes,
    CoreMemory,
    Embedder,
    RecallMemory,
    Throttle,
    WorkingMemory,
)
from bot.runtime.heartbeat_ports import (
    ActivitySchedule,
    ArchivalUpkeep,
    CoreUpkeep,
    FiringGuard,
    HeartbeatActivity,
    ProactivePrefsStore,
)
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.backend import VectorCollection
from memory.qdrant.embeddings import HashingEmbedder, LocalEmbedder, OpenAIEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.redis.activity import RedisActivityLog, RedisFiringGuard
from memory.redis.audit import RedisAuditLog
from memory.redis.core import RedisCoreMemory
from memory.redis.keys import RedisKeys
from memory.redis.locks import RedisAgentLocks
from memory.redis.platform_state import RedisChannelModes, RedisThrottle
from memory.redis.quarantine import RedisQuarantine
from memory.redis.working import RedisWorkingMemory


def _typed_against_protocols(redis: aioredis.Redis, recall_points: VectorCollection, notes: VectorCollection) -> None:
    """Never called: mypy checks that each implementation fits each port its consumers declare."""
    keys = RedisKeys()
    embedder: Embedder = HashingEmbedder()
    embedders: list[Embedder] = [LocalEmbedder(), OpenAIEmbedder(api_key="x")]
    core = RedisCoreMemory(redis, keys)
    working = RedisWorkingMemory(redis, keys)
    recall = QdrantRecallMemory(recall_points, embedder)
    archival = QdrantArchivalMemory(notes, embedder)
    audit = RedisAuditLog(redis, keys)
    activity = RedisActivityLog(redis, keys)
    throttle = RedisThrottle(redis, keys)
    # what a turn uses (bot/core, bot/runtime/runtime.py)
    core_turn: CoreMemory = core
    working_turn: WorkingMemory = working
    recall_turn: RecallMemory = recall
    archival_turn: ArchivalMemory = archival
    audit_turn: AuditLog = audit
    locks: AgentLocks = RedisAgentLocks(redis, keys)
    recorder: ActivityRecorder = activity
    throttle_turn: Throttle = throttle
    modes: ChannelModes = RedisChannelModes(redis, keys)
    # what the admin commands use (bot/admin)
    core_admin: CoreAdmin = core
    core_repair: CoreRepair = core
    working_admin: WorkingAdmin = working
    recall_admin: RecallAdmin = recall
    archival_admin: ArchivalAdmin = archival
    audit_trail: AuditTrail = audit
    audit_history: AuditHistory = audit
    activity_admin: ActivityAdmin = activity
    person_state: PersonState = throttle
    quarantine: Quarantine = RedisQuarantine(redis, keys)
    # what heartbeats and their scheduler use (bot/runtime/heartbeat.py, bot/ops/scheduler.py)
    heartbeat_activity: HeartbeatActivity = activity
    schedule: ActivitySchedule = activity
    prefs: ProactivePrefsStore = activity
    core_upkeep: CoreUpkeep = core
    archival_upkeep: ArchivalUpkeep = archival
    guard: FiringGuard = RedisFiringGuard(redis, keys)
    del embedders, core_turn, working_turn, recall_turn, archival_turn, audit_turn, locks, recorder, throttle_turn
    del modes, core_admin, core_repair, working_admin, recall_admin, archival_admin, audit_trail, audit_history
    del activity_admin, person_state, quarantine, heartbeat_activity, schedule, prefs, core_upkeep, archival_upkeep
    del guard


def test_protocol_conformance_is_checked_by_mypy() -> None:
    assert callable(_typed_against_protocols)
