"""Composition root: the one place that builds clients and stores from settings and wires the runtime.

Nothing else in ``bot/`` imports ``memory/`` or ``adapters/``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bot.admin.authz import Authorizer
from bot.admin.memory import MemoryAdmin
from bot.admin.repair import MemoryRepair
from bot.core.agent import Agent
from bot.core.context import Budget, ContextManager
from bot.core.events import InboundMessage
from bot.core.ports import ChatModel, Embedder, PlatformAdapter, ReplySink
from bot.llm.factory import build_chat_model
from bot.llm.metered import MeteredChatModel
from bot.llm.retry import RetryPolicy
from bot.ops.health import Health
from bot.ops.metrics import Metrics
from bot.ops.scheduler import HeartbeatScheduler, JobInfo, UnreadableJob, read_jobs
from bot.ops.turns import ObservedRuntime, TurnTracker
from bot.runtime.heartbeat import HeartbeatConfig, Heartbeats, ProactiveControl
from bot.runtime.outage import AddressSink, OutageBridge, OutageTolerantThrottle
from bot.runtime.runtime import Runtime
from bot.services import Services
from bot.settings import ConfigError, Settings
from memory.journal import FileJournal
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.embeddings import build_embedder
from memory.qdrant.indexer import RecallIndexer
from memory.qdrant.indexer_health import IndexerHealth
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.reindex import reindex
from memory.qdrant.store import (
    CollectionNames,
    QdrantInUseError,
    QdrantSetupError,
    QdrantStore,
    QdrantUnavailableError,
    connect_qdrant,
    open_qdrant,
)
from memory.redis.activity import RedisActivityLog, RedisFiringGuard
from memory.redis.audit import RedisAuditLog
from memory.redis.client import ANY_REDIS_ERROR, AsyncRedis, is_redis_outage
from memory.redis.core import RedisCoreMemory
from memory.redis.counts import MemoryCounts
from memory.redis.fencing import Fencing
from memory.redis.keys import RedisKeys
from memory.redis.locks import RedisAgentLocks
from memory.redis.outbox import RecallOutbox
from memory.redis.platform_state import RedisChannelModes, RedisThrottle
from memory.redis.quarantine import RedisQuarantine, set_aside_job
from memory.redis.store_identity import StoreConflict, StoreRegistry
from memory.redis.url import async_client, redact
from memory.redis.working import RedisWorkingMemory


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


@dataclass
class App:
    """A running membot: stores, model, runtime and admin operations."""

    settings: Settings
    stores: Stores
    model: ChatModel | None
    runtime: Runtime | None
    admin: MemoryAdmin
    repair: MemoryRepair
    services: Services | None
    scheduler: HeartbeatScheduler | None = None  # built with the runtime; started by `membot run`
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=lambda: Health({}))
    turns: TurnTracker = field(default_factory=TurnTracker)  # turns in flight (graceful shutdown waits for them)


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
        recall = QdrantRecallMemory(
            qdrant.client, qdrant.recall_collection, embedder, outbox=outbox, counts=counts, indexer_health=health
        )
        indexer = RecallIndexer(outbox, recall.index, exclusive=qdrant.embedded, health=health, discard=recall.discard)
        try:
            await counts.ensure_counted(
                qdrant.client, {"recall": qdrant.recall_collection, "archival": qdrant.archival_collection}
            )
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
                    qdrant.client, qdrant.archival_collection, embedder, counts=counts, fencing=Fencing(redis, keys)
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
        client = connect_qdrant(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            path=settings.data_dir / "qdrant",
        )
    except (QdrantInUseError, QdrantUnavailableError) as exc:
        await embedder.aclose()
        raise ServiceUnavailable(str(exc)) from None
    try:
        return await reindex(client, CollectionNames.with_prefix(settings.redis_prefix), embedder, progress)
    finally:
        await client.close()
        await embedder.aclose()


def build_model(settings: Settings) -> ChatModel:
    settings.check_llm()
    provider = settings.resolved_provider()
    key: Any = settings.anthropic_api_key if provider == "anthropic" else settings.openai_api_key
    return build_chat_model(
        provider,
        settings.resolved_model(),
        api_key=key.get_secret_value() if key else None,
        base_url=settings.anthropic_base_url if provider == "anthropic" else settings.openai_base_url,
        timeout=settings.llm_timeout,
        retry=RetryPolicy(attempts=settings.llm_retry_attempts, base_delay=settings.llm_retry_delay),
    )


@asynccontextmanager
async def open_app(
    settings: Settings, *, with_model: bool = True, model: ChatModel | None = None
) -> AsyncIterator[App]:
    """Open every store and, when ``with_model``, the model and runtime. Raises ConfigError/ServiceUnavailable.

    ``model`` replaces the configured provider (benchmarks use a zero-latency stand-in).
    """
    if model is None and with_model:
        model = build_model(settings)
    metrics, turns = Metrics(), TurnTracker()
    if model is not None:
        model = MeteredChatModel(model, metrics)
    try:
        async with open_stores(settings) as stores:
            runtime = None
            scheduler = None
            lock = stores.locks.hold
            keys = RedisKeys(settings.redis_prefix)
            heartbeat_config = HeartbeatConfig.from_settings(settings)
            if model is not None:
                scheduler = HeartbeatScheduler(
                    redis_url=settings.redis_url,
                    jobs_key=keys.scheduler_jobs(),
                    run_times_key=keys.scheduler_run_times(),
                    activity=stores.activity,
                    guard=stores.guard,
                    config=heartbeat_config,
                    set_aside=job_quarantine(keys, settings),
                    resilience=settings.redis_resilience(),
                )
                budget = Budget(settings.context_window, settings.max_output_tokens)
                context = ContextManager(
                    model, stores.core, stores.working, stores.recall, stores.archival, budget, metrics=metrics
                )
                agent = Agent(model, stores.working, context, max_steps=settings.max_steps, metrics=metrics)
                runtime = ObservedRuntime(
                    tracker=turns,
                    metrics=metrics,
                    agent=agent,
                    core=stores.core,
                    working=stores.working,
                    recall=stores.recall,
                    archival=stores.archival,
                    audit=stores.audit,
                    locks=stores.locks,
                    max_message_chars=settings.max_message_chars,
                    activity=stores.activity,
                    planner=scheduler,
                    turn_timeout=settings.turn_timeout,
                    outage=outage_bridge(stores, settings),
                )
                lock = runtime.agent_lock
            admin = MemoryAdmin(
                stores.core,
                stores.working,
                stores.recall,
                stores.archival,
                lock,
                audit=stores.audit,
                activity=stores.activity,
                throttle=stores.throttle,
                quarantine=stores.quarantine,
            )
            repair = MemoryRepair(stores.core, stores.audit, lock)
            services = None
            if runtime is not None:
                services = Services(
                    runtime=runtime,
                    admin=admin,
                    repair=repair,
                    authz=Authorizer(settings.admin_id_set),
                    throttle=OutageTolerantThrottle(stores.throttle, runtime.outage)
                    if runtime.outage is not None
                    else stores.throttle,
                    channel_modes=RedisChannelModes(stores.redis, keys),
                    settings=settings,
                    proactive=ProactiveControl(stores.activity, heartbeat_config.proactive),
                )
            indexer = stores.indexer.stats
            metrics.track_indexer(lambda: (indexer.indexed, indexer.failures, indexer.buried))
            app = App(
                settings, stores, model, runtime, admin, repair, services, scheduler, metrics, _health(stores), turns
            )
            try:
                yield app
            finally:
                if scheduler is not None:
                    await scheduler.shutdown()
                if runtime is not None and runtime.outage is not None:
                    await runtime.outage.close()  # what is left stays in the journal for the next start
    finally:
        if model is not None:
            await model.aclose()


def outage_bridge(stores: Stores, settings: Settings) -> OutageBridge:
    """The outage journal of this process (``<data dir>/journal``), adopting what stopped processes left."""
    directory = settings.data_dir / "journal"
    try:
        journal = FileJournal.open(directory)
    except OSError as exc:
        raise ServiceUnavailable(
            f"Cannot write the outage journal in {directory} ({exc.strerror or exc}). Make MEMBOT_DATA_DIR a "
            "writable directory: messages that arrive while Redis is unreachable are kept there."
        ) from None
    return OutageBridge(journal, is_outage=is_redis_outage, probe=stores.redis.ping)


async def resume_journal(app: App, adapters: Sequence[PlatformAdapter] = (), console: ReplySink | None = None) -> int:
    """Answer (in the background) the messages a stopped process left in the journal. Console ones go to
    ``console`` (default: printed on stdout, as the console chat does); platform ones through that platform's
    adapter (its address-based send). Returns how many wait."""
    if app.runtime is None or app.runtime.outage is None:
        return 0
    by_platform = {adapter.platform: adapter for adapter in adapters}
    if console is None:
        from adapters.console import ConsoleSink

        console = ConsoleSink(sys.stdout, sys.stderr)

    def fallback(message: InboundMessage) -> ReplySink | None:
        if message.platform == "console":
            return console
        adapter = by_platform.get(message.platform)
        return AddressSink(adapter, message.address) if adapter is not None else None

    return await app.runtime.outage.start(app.runtime.handle, fallback)


def _health(stores: Stores) -> Health:
    """Checks of the stores every process needs (``membot run`` adds the scheduler's)."""

    async def redis() -> str:
        await stores.redis.ping()
        return "ping answered"

    async def qdrant() -> str:
        collections = await stores.qdrant.client.get_collections()
        where = "embedded" if stores.qdrant.embedded else "server"
        return f"{where}, {len(collections.collections)} collections"

    async def indexer() -> str:  # backing off is reported, not unhealthy: membot still answers, nothing is lost
        return stores.indexer.health.describe()

    return Health({"redis": redis, "qdrant": qdrant, "recall_indexer": indexer})


async def start_heartbeats(app: App, adapters: Sequence[PlatformAdapter]) -> HeartbeatScheduler:
    """Start the app's heartbeat scheduler; proactive messages go out through ``adapters`` (by platform)."""
    if app.scheduler is None or app.runtime is None:
        raise ConfigError("heartbeats need a language model: configure one (see MEMBOT_LLM_PROVIDER)")
    stores = app.stores
    heartbeats = Heartbeats(
        runtime=app.runtime,
        activity=stores.activity,
        core=stores.core,
        recall=stores.recall,
        archival=stores.archival,
        audit=stores.audit,
        adapters={adapter.platform: adapter for adapter in adapters},
        config=app.scheduler.config,
    )
    await app.scheduler.start(heartbeats)
    return app.scheduler


async def list_jobs(settings: Settings) -> list[JobInfo]:
    """Every scheduled heartbeat job, read from Redis alone (works while `membot run` holds embedded Qdrant)."""
    client = await connect_redis(settings)
    await client.aclose()
    keys = RedisKeys(settings.redis_prefix)
    return await asyncio.to_thread(
        read_jobs,
        settings.redis_url,
        keys.scheduler_jobs(),
        keys.scheduler_run_times(),
        job_quarantine(keys, settings),
        settings.redis_resilience(),
    )


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


def build_adapters(services: Services) -> list[PlatformAdapter]:
    """The platform adapters whose credentials are configured (imported only when used)."""
    settings = services.settings
    adapters: list[PlatformAdapter] = []
    if settings.discord_token:
        from adapters.discord import build_discord_adapter

        adapters.append(build_discord_adapter(services))
    if settings.slack_bot_token:
        from adapters.slack import build_slack_adapter

        adapters.append(build_slack_adapter(services))
    return adapters


__all__ = [
    "App",
    "ConfigError",
    "ServiceUnavailable",
    "Stores",
    "build_adapters",
    "list_jobs",
    "open_app",
    "open_proactive_control",
    "open_repair",
    "open_stores",
    "resume_journal",
    "start_heartbeats",
]
