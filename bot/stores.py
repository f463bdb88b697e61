"""Opening membot's stores from settings: Redis, Qdrant, the embedder and the recall indexer, checked and closed
together; and the Redis-only handles (history, rollback, proactive choices, the job list) that work while
``membot run`` holds an embedded Qdrant. Part of the composition root (with ``bot/app.py``): it knows ``memory/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

from bot.admin.repair import MemoryRepair
from bot.core.memory_types import JobInfo
from bot.core.ports import Embedder
from bot.ops.health import Health
from bot.ops.reminders import ReminderBook
from bot.runtime.heartbeat import HeartbeatConfig, ProactiveControl
from bot.settings import ConfigError, Settings
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.edge_backend import EdgeBackend
from memory.qdrant.embeddings import OpenAIEmbedder, build_embedder
from memory.qdrant.indexer import RecallIndexer
from memory.qdrant.indexer_health import IndexerHealth
from memory.qdrant.migrate import migrate_local_store
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.reindex import reindex
from memory.qdrant.store import (
    CollectionNames,
    QdrantInUseError,
    QdrantSetupError,
    QdrantStore,
    QdrantUnavailableError,
    open_backend,
    open_qdrant,
)
from memory.redis.activity import RedisActivityLog, RedisFiringGuard
from memory.redis.audit import RedisAuditLog
from memory.redis.client import ANY_REDIS_ERROR, AsyncRedis
from memory.redis.core import RedisCoreMemory
from memory.redis.counts import MemoryCounts
from memory.redis.fencing import Fencing
from memory.redis.jobstore import SharedJobStore, UnreadableJob
from memory.redis.keys import RedisKeys
from memory.redis.locks import RedisAgentLocks
from memory.redis.outbox import RecallOutbox
from memory.redis.platform_state import RedisThrottle
from memory.redis.quarantine import RedisQuarantine, set_aside_job
from memory.redis.store_identity import StoreConflict, StoreRegistry
from memory.redis.url import async_client, redact
from memory.redis.working import RedisWorkingMemory
from memory.storage_faults import storage_problem


class ServiceUnavailable(Exception):
    """A backing service (Redis, Qdrant) cannot be reached; the message says what to do."""


@dataclass
class Stores:
    """Every memory store, opened from settings."""

    redis: AsyncRedis
    qdrant: QdrantStore
    embedder: Embedder
    core: RedisCoreMemory
    working: RedisWorkingMemory
    recall: QdrantRecallMemory
    archival: QdrantArchivalMemory
    locks: RedisAgentLocks
    activity: RedisActivityLog
    guard: RedisFiringGuard
    audit: RedisAuditLog
    throttle: RedisThrottle
    outbox: RecallOutbox
    indexer: RecallIndexer
    quarantine: RedisQuarantine


START_ERRORS: tuple[type[Exception], ...] = (*ANY_REDIS_ERROR, TimeoutError)


async def connect_redis(settings: Settings) -> AsyncRedis:
    # a server, the master a Sentinel names, or a cluster; retrying blips (memory.redis.url.RedisResilience)
    client = async_client(settings.redis_url, settings.redis_resilience())
    try:
        async with asyncio.timeout(max(1.0, settings.redis_retry_seconds)):  # at start, one retry budget at most
            await client.ping()
    except START_ERRORS as exc:
        await client.aclose()
        raise ServiceUnavailable(
            f"Cannot reach Redis at {redact(settings.redis_url)} ({exc}). Start redis-server, or set REDIS_URL "
            "to a Redis that answers."
        ) from None
    return client


@asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[Stores]:
    redis = await connect_redis(settings)
    try:
        keys = RedisKeys(settings.redis_prefix)
        embedder = _embedder(settings)
        if isinstance(embedder, OpenAIEmbedder) and not embedder.dimensions:  # a model membot does not know
            try:
                await embedder.probe_dimensions()
            except RuntimeError as exc:
                await embedder.aclose()
                raise ServiceUnavailable(str(exc)) from None
        registry = StoreRegistry(redis, keys, redis_description=redact(settings.redis_url))
        try:
            if not settings.qdrant_url:  # refuse another namespace's store before creating anything
                await registry.check_embedded(settings.data_dir / "qdrant")
            qdrant = await open_qdrant(
                url=settings.qdrant_url,
                api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
                path=settings.data_dir / "qdrant",
                dimensions=embedder.dimensions,
                embedder_name=embedder.name,
                prefix=settings.redis_prefix,
            )
        except StoreConflict as exc:
            await embedder.aclose()
            raise ConfigError(str(exc)) from None
        except (QdrantInUseError, QdrantUnavailableError, QdrantSetupError) as exc:
            await embedder.aclose()
            raise ServiceUnavailable(str(exc)) from None
        try:  # one store per Redis namespace (memory/redis/store_identity.py): only it drains the recall outbox
            if settings.qdrant_url:
                await registry.claim_server(redact(settings.qdrant_url))
            else:
                await registry.claim_embedded(settings.data_dir / "qdrant")
        except StoreConflict as exc:
            await qdrant.close()
            await embedder.aclose()
            raise ConfigError(str(exc)) from None
        outbox = RecallOutbox(redis, keys)
        counts = MemoryCounts(redis, keys)
        # shared: recall reads do not wait for an indexer that is backing off
        health = IndexerHealth(storage_dir=settings.data_dir / "qdrant" if qdrant.embedded else None)
        recall = QdrantRecallMemory(qdrant.recall, embedder, outbox=outbox, counts=counts, indexer_health=health)
        indexer = RecallIndexer(outbox, recall.index, exclusive=qdrant.embedded, health=health, discard=recall.discard)
        try:
            await counts.ensure_counted({"recall": qdrant.recall, "archival": qdrant.archival})
            await indexer.start()
            quarantine = RedisQuarantine(redis, keys, settings.audit_max_entries)
            yield Stores(
                redis=redis,
                qdrant=qdrant,
                embedder=embedder,
                core=core_memory(redis, keys, settings),
                working=RedisWorkingMemory(redis, keys, quarantine),
                recall=recall,
                archival=QdrantArchivalMemory(
                    qdrant.archival,
                    embedder,
                    counts=counts,
                    fencing=Fencing(redis, keys),
                    storage_dir=qdrant.backend.storage_dir,
                ),
                locks=agent_locks(redis, keys, settings),
                activity=RedisActivityLog(redis, keys),
                guard=RedisFiringGuard(redis, keys),
                audit=RedisAuditLog(redis, keys, settings.audit_max_entries),
                throttle=RedisThrottle(redis, keys),
                outbox=outbox,
                indexer=indexer,
                quarantine=quarantine,
            )
        finally:
            await indexer.close()
            await qdrant.close()
            await embedder.aclose()
    finally:
        await redis.aclose()


def core_memory(redis: AsyncRedis, keys: RedisKeys, settings: Settings) -> RedisCoreMemory:
    return RedisCoreMemory(
        redis,
        keys,
        block_limit=settings.core_block_limit,
        versions_kept=settings.core_versions_kept,
        audit_max_entries=settings.audit_max_entries,
        quarantine=RedisQuarantine(redis, keys, settings.audit_max_entries),
    )


def job_quarantine(keys: RedisKeys, settings: Settings) -> UnreadableJob:
    """Where the heartbeat job store sets aside a job it cannot read: its agent's quarantine."""
    return partial(set_aside_job, keys=keys, audit_max_entries=settings.audit_max_entries)


def agent_locks(redis: AsyncRedis, keys: RedisKeys, settings: Settings) -> RedisAgentLocks:
    return RedisAgentLocks(
        redis,
        keys,
        lease_seconds=settings.lock_lease_seconds,
        renew_seconds=settings.lock_renew_seconds,
        wait_seconds=settings.lock_wait_seconds,
        busy_notice_seconds=settings.busy_notice_seconds,
    )


def _embedder(settings: Settings) -> Embedder:
    try:
        return build_embedder(
            settings.embedder,
            openai_api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            openai_base_url=settings.openai_base_url,
            openai_model=settings.openai_embedding_model,
            openai_dimensions=settings.embedding_dimensions,
            hashing_dimensions=settings.embedding_dimensions or 384,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def reindex_memory(settings: Settings, progress: Callable[[str, int, int], None]) -> dict[str, int]:
    """Rebuild the search vectors of both collections from their stored text (after an upgrade changed them)."""
    embedder = _embedder(settings)
    try:
        backend = open_backend(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            path=settings.data_dir / "qdrant",
        )
    except (QdrantInUseError, QdrantUnavailableError) as exc:
        await embedder.aclose()
        raise ServiceUnavailable(str(exc)) from None
    try:
        return await reindex(backend, CollectionNames.with_prefix(settings.redis_prefix), embedder, progress)
    finally:
        await backend.close()
        await embedder.aclose()


async def migrate_memory(settings: Settings, progress: Callable[[str, int, int], None]) -> dict[str, int]:
    """Copy an embedded store of qdrant-client's local mode into Qdrant Edge (what the first start does anyway)."""
    if settings.qdrant_url:
        raise ConfigError("QDRANT_URL is set: the server needs no migration (it is for the embedded store)")
    try:
        backend = open_backend(path=settings.data_dir / "qdrant")
    except QdrantInUseError as exc:
        raise ServiceUnavailable(str(exc)) from None
    try:
        assert isinstance(backend, EdgeBackend)
        return await migrate_local_store(backend, CollectionNames.with_prefix(settings.redis_prefix), progress)
    except (QdrantInUseError, QdrantSetupError) as exc:
        raise ServiceUnavailable(str(exc)) from None
    finally:
        await backend.close()


def store_health(stores: Stores) -> Health:
    """Checks of the stores every process needs (``membot run`` adds the scheduler's)."""

    async def redis() -> str:
        await stores.redis.ping()
        return "ping answered"

    async def qdrant() -> str:
        collections = await stores.qdrant.backend.names()
        where = "embedded" if stores.qdrant.embedded else "server"
        return f"{where}, {len(collections)} collections"

    async def indexer() -> str:  # backing off is reported, not unhealthy: membot still answers, nothing is lost
        return stores.indexer.health.describe()

    return Health({"redis": redis, "qdrant": qdrant, "recall_indexer": indexer})


async def list_jobs(settings: Settings) -> list[JobInfo]:
    """Every scheduled heartbeat job, read from Redis alone (works while `membot run` holds embedded Qdrant)."""
    client = await connect_redis(settings)
    await client.aclose()
    return await asyncio.to_thread(heartbeat_job_store(settings).read)


def heartbeat_job_store(settings: Settings) -> SharedJobStore:
    """The heartbeat job store of this Redis namespace (the scheduler's, and ``membot jobs list``'s)."""
    keys = RedisKeys(settings.redis_prefix)
    return SharedJobStore(
        settings.redis_url,
        keys.scheduler_jobs(),
        keys.scheduler_run_times(),
        job_quarantine(keys, settings),
        settings.redis_resilience(),
    )


def reminder_lease(settings: Settings) -> timedelta:
    """How long a reminder being sent stays claimed (``MEMBOT_REMINDER_LEASE_SECONDS``)."""
    return timedelta(seconds=settings.reminder_lease_seconds)


@asynccontextmanager
async def open_repair(settings: Settings) -> AsyncIterator[MemoryRepair]:
    """History and rollback on Redis alone (no Qdrant, no model), with the agents' cross-process locks."""
    client = await connect_redis(settings)
    try:
        keys = RedisKeys(settings.redis_prefix)
        core = core_memory(client, keys, settings)
        audit = RedisAuditLog(client, keys, settings.audit_max_entries)
        yield MemoryRepair(core, audit, agent_locks(client, keys, settings).hold)
    finally:
        await client.aclose()


@asynccontextmanager
async def open_proactive_control(settings: Settings) -> AsyncIterator[ProactiveControl]:
    """Proactive-message choices on Redis alone (no Qdrant, no model)."""
    client = await connect_redis(settings)
    try:
        activity = RedisActivityLog(client, RedisKeys(settings.redis_prefix))
        yield ProactiveControl(activity, HeartbeatConfig.from_settings(settings).proactive)
    finally:
        await client.aclose()


@asynccontextmanager
async def open_reminders(settings: Settings) -> AsyncIterator[ReminderBook]:
    """The reminders users asked for, on Redis alone (no Qdrant, no model: works beside `membot run`)."""
    client = await connect_redis(settings)
    try:
        activity = RedisActivityLog(client, RedisKeys(settings.redis_prefix))
        yield ReminderBook(heartbeat_job_store(settings), activity, settings.timezone, lease=reminder_lease(settings))
    finally:
        await client.aclose()


def storage_failure(exc: BaseException, data_dir: Path | None = None) -> str | None:
    """Why a command failed on the data disk (full, read-only, an I/O error), looking through the exception's
    causes, or None when it did not fail on the disk."""
    seen: BaseException | None = exc
    while seen is not None:
        problem = storage_problem(seen, data_dir if data_dir is not None and data_dir.is_dir() else None)
        if problem is not None:
            return problem
        seen = seen.__cause__ or seen.__context__
    return None
