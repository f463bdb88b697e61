"""The audit trail stream on a real Redis: newest first, paging, the cap, erase keeping only its own record."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from bot.core.memory_types import AuditEntry, AuditKind
from memory.redis.audit import RedisAuditLog
from memory.redis.keys import RedisKeys
from tests.memory.helpers import ALICE, BOB


async def test_entries_come_back_newest_first_with_their_fields(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    audit = RedisAuditLog(redis_client, keys)
    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    await audit.record(ALICE, AuditEntry(AuditKind.ARCHIVAL_INSERT, "event:discord:9", at, detail={"id": "p1"}))
    await audit.record(ALICE, AuditEntry(AuditKind.RECALL_DELETE, "user:discord:7", detail={"ids": ["a", "b"]}))
    await audit.record(BOB, AuditEntry(AuditKind.IMPORT, "cli"))
    newest, oldest = await audit.history(ALICE, 10)
    assert (newest.kind, newest.cause, dict(newest.detail)) == ("recall_delete", "user:discord:7", {"ids": ["a", "b"]})
    assert (oldest.kind, oldest.at, oldest.version, oldest.label) == ("archival_insert", at, None, None)
    assert [e.kind for e in await audit.history(ALICE, 1, before=newest.id)] == ["archival_insert"]
    assert await audit.history(ALICE, 10, before=oldest.id) == []
    exported = await audit.export(ALICE)
    assert [item["kind"] for item in exported] == ["archival_insert", "recall_delete"]
    assert exported[0]["at"] == "2024-05-01T12:30:00.000000Z" and exported[0]["detail"] == {"id": "p1"}


async def test_the_stream_is_capped_near_max_entries_keeping_the_newest(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    audit = RedisAuditLog(redis_client, keys, max_entries=100)
    for i in range(1000):
        await audit.record(ALICE, AuditEntry(AuditKind.ARCHIVAL_INSERT, f"event:console:{i}"))
    length = await redis_client.xlen(keys.audit(ALICE))
    assert 100 <= length < 300, "MAXLEN ~ trims whole nodes: never below the cap, not far above it"
    assert (await audit.history(ALICE, 1))[0].cause == "event:console:999"


async def test_erase_leaves_only_the_record_of_the_erase(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    audit = RedisAuditLog(redis_client, keys)
    for _ in range(3):
        await audit.record(ALICE, AuditEntry(AuditKind.IMPORT, "cli"))
    await audit.record(BOB, AuditEntry(AuditKind.IMPORT, "cli"))
    assert await audit.erase(ALICE, AuditEntry(AuditKind.ERASE, "user:slack:U1", detail={"removed": {"core": 2}})) == 3
    [only] = await audit.history(ALICE, 10)
    assert (only.kind, only.cause, dict(only.detail)) == ("erase", "user:slack:U1", {"removed": {"core": 2}})
    assert len(await audit.history(BOB, 10)) == 1
