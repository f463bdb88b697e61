"""Composition root: the one place that builds the model, the runtime and its services from settings, on the stores
``bot/stores.py`` opens, and resumes the outage journal.

Nothing else in ``bot/`` imports ``memory/`` or ``adapters/`` (but ``bot/stores.py`` and ``bot/cli/``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from adapters.keys import person_of
from bot.admin.authz import Authorizer
from bot.admin.memory import MemoryAdmin
from bot.admin.repair import MemoryRepair
from bot.core.agent import Agent
from bot.core.context import Budget, ContextManager
from bot.core.events import InboundMessage
from bot.core.ports import ChatModel, PlatformAdapter, ReplySink
from bot.llm.factory import build_chat_model
from bot.llm.metered import MeteredChatModel
from bot.llm.retry import RetryPolicy
from bot.ops.health import Health
from bot.ops.metrics import Metrics
from bot.ops.reminders import ReminderBook
from bot.ops.scheduler import HeartbeatScheduler
from bot.ops.turns import ObservedRuntime, TurnTracker
from bot.runtime.heartbeat import HeartbeatConfig, Heartbeats, ProactiveControl
from bot.runtime.outage import AddressSink, OutageBridge, OutageTolerantChannelModes, OutageTolerantThrottle
from bot.runtime.runtime import Runtime
from bot.services import Services
from bot.settings import ConfigError, Settings
from bot.stores import ServiceUnavailable, Stores, heartbeat_job_store, open_stores, store_health
from memory.journal import FileJournal
from memory.redis.client import is_redis_outage
from memory.redis.keys import RedisKeys
from memory.redis.platform_state import RedisChannelModes


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
            reminders = ReminderBook(heartbeat_job_store(settings), stores.activity, settings.timezone)
            if model is not None:
                scheduler = HeartbeatScheduler(
                    job_store=heartbeat_job_store(settings),
                    activity=stores.activity,
                    guard=stores.guard,
                    config=heartbeat_config,
                )
                reminders.wake = scheduler.wakeup
                budget = Budget(settings.context_window, settings.max_output_tokens)
                context = ContextManager(
                    model,
                    stores.core,
                    stores.working,
                    stores.recall,
                    stores.archival,
                    budget,
                    metrics=metrics,
                    clock=reminders,
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
                    reminders=reminders,
                )
                lock = runtime.agent_lock
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
                    channel_modes=OutageTolerantChannelModes(RedisChannelModes(stores.redis, keys), runtime.outage)
                    if runtime.outage is not None
                    else RedisChannelModes(stores.redis, keys),
                    settings=settings,
                    proactive=ProactiveControl(stores.activity, heartbeat_config.proactive),
                )
            indexer = stores.indexer.stats
            metrics.track_indexer(lambda: (indexer.indexed, indexer.failures, indexer.buried))
            app = App(
                settings,
                stores,
                model,
                runtime,
                admin,
                repair,
                services,
                scheduler,
                metrics,
                store_health(stores),
                turns,
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
    "build_adapters",
    "build_model",
    "open_app",
    "outage_bridge",
    "platform_checks",
    "resume_journal",
    "start_heartbeats",
]
