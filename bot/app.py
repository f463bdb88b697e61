"""Composition root: the one place that builds clients and stores from settings and wires the runtime.

Nothing else in ``bot/`` imports ``memory/`` or ``adapters/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.admin import MemoryAdmin
from bot.agent import Agent
from bot.authz import Authorizer
from bot.context import Budget, ContextManager
from bot.health import Health
from bot.heartbeat import HeartbeatConfig, Heartbeats, ProactiveControl
from bot.llm.factory import build_chat_model
from bot.llm.metered import MeteredChatModel
from bot.metrics import Metrics
from bot.ports import ChatModel, Embedder, PlatformAdapter
from bot.redis_url import async_client, redact
from bot.repair import MemoryRepair
from bot.runtime import Runtime
from bot.scheduler import HeartbeatScheduler, JobInfo, read_jobs
from bot.services import Services
from bot.settings import ConfigError, Settings
from bot.turns import ObservedRuntime, TurnTracker
from memory.activity import RedisActivityLog, RedisFiringGuard
from memory.archival import QdrantArchivalMemory
from memory.audit import RedisAuditLog
from memory.core import RedisCoreMemory
from memory.counts import MemoryCounts
from memory.embeddings import build_embedder
from memory.indexer import RecallIndexer
from memory.keys import RedisKeys
from memory.locks import RedisAgentLocks
from memory.outbox import RecallOutbox
from memory.platform_state import RedisChannelModes, RedisThrottle
from memory.qdrant import (
    CollectionNames,
    QdrantInUseError,
    QdrantSetupError,
    QdrantStore,
    QdrantUnavailableError,
    connect_qdrant,
    open_qdrant,
)
from memory.recall import QdrantRecallMemory
from memory.redis_client import ANY_REDIS_ERROR, AsyncRedis
from memory.reindex import reindex
from memory.working import RedisWorkingMemory


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


async def connect_redis(settings: Settings) -> AsyncRedis:
    client = async_client(settings.redis_url)  # a server, the master a Sentinel names, or a cluster
    try:
        await client.ping()
    except ANY_REDIS_ERROR as exc:
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
        try:
            qdrant = await open_qdrant(
                url=settings.qdrant_url,
                api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
                path=settings.data_dir / "qdrant",
                dimensions=embedder.dimensions,
                embedder_name=embedder.name,
                prefix=settings.redis_prefix,
            )
        except (QdrantInUseError, QdrantUnavailableError, QdrantSetupError) as exc:
            await embedder.aclose()
            raise ServiceUnavailable(str(exc)) from None
        outbox = RecallOutbox(redis, keys)
        counts = MemoryCounts(redis, keys)
        recall = QdrantRecallMemory(qdrant.client, qdrant.recall_collection, embedder, outbox=outbox, counts=counts)
        indexer = RecallIndexer(outbox, recall.index, exclusive=qdrant.embedded, discard=recall.discard)
        try:
            await counts.ensure_counted(
                qdrant.client, {"recall": qdrant.recall_collection, "archival": qdrant.archival_collection}
            )
            await indexer.start()
            yield Stores(
                redis=redis,
                qdrant=qdrant,
                embedder=embedder,
                core=core_memory(redis, keys, settings),
                working=RedisWorkingMemory(redis, keys),
                recall=recall,
                archival=QdrantArchivalMemory(qdrant.client, qdrant.archival_collection, embedder, counts=counts),
                locks=RedisAgentLocks(redis, keys),
                activity=RedisActivityLog(redis, keys),
                guard=RedisFiringGuard(redis, keys),
                audit=RedisAuditLog(redis, keys, settings.audit_max_entries),
                throttle=RedisThrottle(redis, keys),
                outbox=outbox,
                indexer=indexer,
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
    )


def _embedder(settings: Settings) -> Embedder:
    return build_embedder(
        settings.embedder,
        openai_api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        openai_base_url=settings.openai_base_url,
        openai_model=settings.openai_embedding_model,
    )


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
            )
            repair = MemoryRepair(stores.core, stores.audit, lock)
            services = None
            if runtime is not None:
                services = Services(
                    runtime=runtime,
                    admin=admin,
                    repair=repair,
                    authz=Authorizer(settings.admin_id_set),
                    throttle=stores.throttle,
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
    finally:
        if model is not None:
            await model.aclose()


def _health(stores: Stores) -> Health:
    """Checks of the stores every process needs (``membot run`` adds the scheduler's)."""

    async def redis() -> str:
        await stores.redis.ping()
        return "ping answered"

    async def qdrant() -> str:
        collections = await stores.qdrant.client.get_collections()
        where = "embedded" if stores.qdrant.embedded else "server"
        return f"{where}, {len(collections.collections)} collections"

    return Health({"redis": redis, "qdrant": qdrant})


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
    return await asyncio.to_thread(read_jobs, settings.redis_url, keys.scheduler_jobs(), keys.scheduler_run_times())


@asynccontextmanager
async def open_repair(settings: Settings) -> AsyncIterator[MemoryRepair]:
    """History and rollback on Redis alone (no Qdrant, no model), with the agents' cross-process locks."""
    client = await connect_redis(settings)
    try:
        keys = RedisKeys(settings.redis_prefix)
        core = core_memory(client, keys, settings)
        audit = RedisAuditLog(client, keys, settings.audit_max_entries)
        yield MemoryRepair(core, audit, RedisAgentLocks(client, keys).hold)
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
    "start_heartbeats",
]
