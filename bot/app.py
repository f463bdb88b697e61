"""Composition root: the one place that builds membot from settings, once, and owns its lifecycle.

Two shapes, each built by one function here and used as an async context manager (leaving the block closes it):

- ``open_memory_app(settings)`` → ``MemoryApp``: the stores and the memory commands on them, no model (``membot
  memory show|export|reset|erase|forget``, ``membot doctor``).
- ``open_app(settings)`` → ``App``: a ``MemoryApp`` plus the model, the runtime, the platform services, the heartbeat
  scheduler and the outage journal, always all of them (``membot chat``, ``membot run``).

An ``App``'s lifecycle, as arq's ``Worker``: built unstarted (``membot chat`` never starts it); ``start(adapters)``
starts the heartbeats, whose proactive messages go out through the adapters; ``resume_journal`` answers what a
stopped process kept during a Redis outage; ``drain`` stops taking work and waits, bounded, for the turns and firings
in flight; ``stop`` stops the heartbeats (``start`` may follow again); ``close`` stops them and releases everything in
the reverse order of building: journal, stores, model.

``bot/stores.py`` is the other half of the root: it opens the stores, and the Redis-only handles that work while
``membot run`` holds an embedded Qdrant (history, rollback, proactive choices, the job list). Nothing else in
``bot/`` imports ``memory/`` or ``adapters/`` (but ``bot/cli/``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from adapters.keys import person_of
from bot.admin.authz import Authorizer
from bot.admin.memory import MemoryAdmin
from bot.admin.repair import MemoryRepair
from bot.core.agent import Agent
from bot.core.context import Budget, ContextManager
from bot.core.events import AgentKey, InboundMessage
from bot.core.ports import ChatModel, Embedder, PlatformAdapter, ReplySink
from bot.core.tasks import stop_task
from bot.llm.factory import build_chat_model
from bot.llm.metered import MeteredChatModel
from bot.llm.retry import RetryPolicy
from bot.llm.tokens import encoding
from bot.ops.deployment import Share, Topology
from bot.ops.health import Health
from bot.ops.metrics import Metrics
from bot.ops.reminders import ReminderBook
from bot.ops.scheduler import HeartbeatScheduler
from bot.ops.shutdown import drain
from bot.ops.turns import ObservedRuntime, TurnTracker
from bot.runtime.heartbeat import HeartbeatConfig, Heartbeats, ProactiveControl
from bot.runtime.outage import AddressSink, OutageBridge, OutageTolerantChannelModes, OutageTolerantThrottle
from bot.runtime.runtime import Runtime
from bot.runtime.user_message import ImageDescriber
from bot.services import Services
from bot.settings import Settings
from bot.stores import ServiceUnavailable, Stores, heartbeat_job_store, open_stores, reminder_lease, store_health
from memory.journal import FileJournal
from memory.redis.client import is_redis_outage
from memory.redis.keys import RedisKeys
from memory.redis.platform_state import RedisChannelModes

AgentLock = Callable[[AgentKey], AbstractAsyncContextManager[object]]


log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class MemoryApp:
    """The stores and the memory commands on them, without a model."""

    settings: Settings
    stores: Stores
    admin: MemoryAdmin
    repair: MemoryRepair
    metrics: Metrics
    health: Health
    resources: AsyncExitStack = field(repr=False)  # what ``close`` releases, pushed in the order of building

    async def close(self) -> None:
        """Release everything, newest first (a second call does nothing)."""
        await self.resources.aclose()


@dataclass(kw_only=True)
class App(MemoryApp):
    """A running membot: the stores and memory commands, the model, the runtime, the services the adapters get, the
    heartbeat scheduler (unstarted until ``start``) and the outage journal."""

    model: ChatModel
    runtime: Runtime
    services: Services
    scheduler: HeartbeatScheduler
    outage: OutageBridge
    turns: TurnTracker  # turns in flight (``drain`` waits for them)
    topology: Topology  # this process's share of the deployment (``membot run`` checks it)

    def build_adapters(self) -> list[PlatformAdapter]:
        """The platform adapters whose credentials are configured (imported only when used)."""
        adapters: list[PlatformAdapter] = []
        if self.settings.discord_token:
            from adapters.discord import build_discord_adapter

            adapters.append(build_discord_adapter(self.services))
        if self.settings.slack_bot_token:
            from adapters.slack import build_slack_adapter

            adapters.append(build_slack_adapter(self.services))
        return adapters

    async def start(self, adapters: Sequence[PlatformAdapter] = ()) -> None:
        """Start the heartbeat scheduler, proactive messages going out through ``adapters`` (by platform); from now
        on ``health`` reports the scheduler and the adapters' connections."""
        stores = self.stores
        heartbeats = Heartbeats(
            runtime=self.runtime,
            activity=stores.activity,
            core=stores.core,
            recall=stores.recall,
            archival=stores.archival,
            audit=stores.audit,
            adapters={adapter.platform: adapter for adapter in adapters},
            config=self.scheduler.config,
        )
        await self.scheduler.start(heartbeats)
        # load the embedding model now, not in the middle of the first conversations (a second-long stall)
        warm = asyncio.create_task(_warm_embedder(stores.embedder), name="embedder-warm-up")
        self.resources.push_async_callback(stop_task, warm, within=5.0)
        self.health.add("scheduler", self.scheduler.check)
        self.health.watch(self.services.connections, self.settings.health_grace_seconds)

    async def resume_journal(self, adapters: Sequence[PlatformAdapter] = (), console: ReplySink | None = None) -> int:
        """Answer (in the background) the messages a stopped process left in the journal. Console ones go to
        ``console`` (default: printed on stdout, as the console chat does); platform ones through that platform's
        adapter (its address-based send). Returns how many wait."""
        by_platform = {adapter.platform: adapter for adapter in adapters}
        if console is None:
            from adapters.console import ConsoleSink

            console = ConsoleSink(sys.stdout, sys.stderr)

        def fallback(message: InboundMessage) -> ReplySink | None:
            if message.platform == "console":
                return console
            adapter = by_platform.get(message.platform)
            return AddressSink(adapter, message.address) if adapter is not None else None

        return await self.outage.start(self.runtime.handle, fallback)

    async def drain(
        self, adapters: Sequence[PlatformAdapter], *, notify: Callable[[str], None], force: asyncio.Event
    ) -> None:
        """Stop taking events and firings, and wait up to ``MEMBOT_SHUTDOWN_TIMEOUT`` (or until ``force``) for the
        turns in flight; cancel those still running then (``bot.ops.shutdown``). Never raises."""
        await drain(
            adapters=adapters,
            turns=self.turns,
            scheduler=self.scheduler,
            health=self.health,
            grace=self.settings.shutdown_timeout,
            notify=notify,
            force=force,
        )

    async def stop(self) -> None:
        """Stop the heartbeat scheduler (firings in progress are cancelled and run again later)."""
        await self.scheduler.shutdown()


async def warm_tokenizer() -> None:
    """Load the token counter's encoding in a thread (about 0.3 s), so the first turn does not stall the loop."""
    await asyncio.to_thread(encoding)


async def _warm_embedder(embedder: Embedder) -> None:
    await warm_tokenizer()
    try:
        await embedder.embed(["warm-up"])
    except Exception as exc:  # the indexer backs off and searches use words meanwhile; nothing to stop for
        log.warning("embeddings unavailable at start (%s); searching by words until they answer", type(exc).__name__)


def build_model(settings: Settings) -> ChatModel:
    """The configured language model. Raises ConfigError when its settings cannot work."""
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
        stream=settings.stream,
    )


@asynccontextmanager
async def open_memory_app(settings: Settings) -> AsyncIterator[MemoryApp]:
    """Open the stores and the memory commands, without a model. Raises ConfigError/ServiceUnavailable."""
    metrics = Metrics()
    async with AsyncExitStack() as resources:
        stores = await resources.enter_async_context(open_stores(settings))
        reminders = ReminderBook(
            heartbeat_job_store(settings), stores.activity, settings.timezone, lease=reminder_lease(settings)
        )
        admin, repair = _memory_commands(stores, stores.locks.hold, reminders)
        memory = MemoryApp(
            settings=settings,
            stores=stores,
            admin=admin,
            repair=repair,
            metrics=_track_indexer(metrics, stores),
            health=store_health(stores),
            resources=resources.pop_all(),
        )
    try:
        yield memory
    finally:
        await memory.close()


@asynccontextmanager
async def open_app(settings: Settings, *, model: ChatModel | None = None) -> AsyncIterator[App]:
    """Build every part of membot, unstarted. Raises ConfigError/ServiceUnavailable.

    ``model`` replaces the configured provider (benchmarks use a zero-latency stand-in).
    """
    app = await _build_app(settings, model if model is not None else build_model(settings))
    try:
        yield app
    finally:
        await app.close()


async def _build_app(settings: Settings, model: ChatModel) -> App:
    metrics, turns = Metrics(), TurnTracker()
    metered = MeteredChatModel(model, metrics)
    async with AsyncExitStack() as resources:  # on a failure, what was opened closes again
        resources.push_async_callback(metered.aclose)
        stores = await resources.enter_async_context(open_stores(settings))
        outage = outage_bridge(stores, settings)
        resources.push_async_callback(outage.close)  # what is left stays in the journal for the next start
        heartbeat_config = HeartbeatConfig.from_settings(settings)
        scheduler = HeartbeatScheduler(
            job_store=heartbeat_job_store(settings),
            activity=stores.activity,
            guard=stores.guard,
            config=heartbeat_config,
            reminder_lease=reminder_lease(settings),
        )
        resources.push_async_callback(scheduler.shutdown)
        reminders = ReminderBook(
            heartbeat_job_store(settings), stores.activity, settings.timezone, lease=reminder_lease(settings)
        )
        reminders.wake = scheduler.wakeup
        budget = Budget(settings.context_window, settings.max_output_tokens)
        context = ContextManager(
            metered,
            stores.core,
            stores.working,
            stores.recall,
            stores.archival,
            budget,
            metrics=metrics,
            clock=reminders,
        )
        agent = Agent(metered, stores.working, context, max_steps=settings.max_steps, metrics=metrics)
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
            outage=outage,
            reminders=reminders,
            describer=ImageDescriber(metered) if settings.sees_images() else None,
            live_replies=settings.stream,
        )
        admin, repair = _memory_commands(stores, runtime.agent_lock, reminders)
        channel_modes = RedisChannelModes(stores.redis, RedisKeys(settings.redis_prefix))
        services = Services(
            runtime=runtime,
            admin=admin,
            repair=repair,
            authz=Authorizer(settings.admin_id_set),
            throttle=OutageTolerantThrottle(stores.throttle, outage),
            channel_modes=OutageTolerantChannelModes(channel_modes, outage),
            settings=settings,
            proactive=ProactiveControl(stores.activity, heartbeat_config.proactive),
        )
        app = App(
            settings=settings,
            stores=stores,
            admin=admin,
            repair=repair,
            metrics=_track_indexer(metrics, stores),
            health=store_health(stores),
            model=metered,
            runtime=runtime,
            services=services,
            scheduler=scheduler,
            outage=outage,
            turns=turns,
            topology=topology(settings),
            resources=resources.pop_all(),
        )
    return app


def _memory_commands(stores: Stores, lock: AgentLock, reminders: ReminderBook) -> tuple[MemoryAdmin, MemoryRepair]:
    """The memory commands and repairs, taking each agent's ``lock`` (the runtime's, when there is one)."""
    admin = MemoryAdmin(
        stores.core,
        stores.working,
        stores.recall,
        stores.archival,
        lock,
        audit=stores.audit,
        person_of=person_of,
        activity=stores.activity,
        throttle=stores.throttle,
        quarantine=stores.quarantine,
        reminders=reminders,
    )
    return admin, MemoryRepair(stores.core, stores.audit, lock)


def _track_indexer(metrics: Metrics, stores: Stores) -> Metrics:
    indexer = stores.indexer.stats
    metrics.track_indexer(lambda: (indexer.indexed, indexer.failures, indexer.buried))
    return metrics


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


def topology(settings: Settings) -> Topology:
    """This process's share of the deployment: its replicas and, when ``DISCORD_SHARD_*`` is set, its Discord shards
    (the Discord adapter's policy; imported only then, as it loads discord.py)."""
    shares: list[Share] = []
    if settings.discord_shard_count is not None or settings.discord_shard_ids:
        from adapters.discord.shards import DiscordShards

        shares.append(DiscordShards.from_settings(settings))
    return Topology.from_settings(settings, shares)


def platform_checks(settings: Settings) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
    """``membot doctor``'s checks of each configured platform's credentials, against the platform itself."""
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = []
    if settings.discord_token:
        from adapters.discord.credentials import check_discord_token

        checks.append(("discord", lambda: check_discord_token(settings)))
    if settings.slack_bot_token:
        from adapters.slack.credentials import check_slack_tokens

        checks.append(("slack", lambda: check_slack_tokens(settings)))
    return checks


__all__ = [
    "App",
    "MemoryApp",
    "build_model",
    "open_app",
    "open_memory_app",
    "outage_bridge",
    "platform_checks",
    "topology",
]
