"""``membot run``: every configured chat platform, the heartbeat scheduler and the health/metrics endpoints, until
SIGINT or SIGTERM; then a graceful stop (``bot.ops.shutdown``). The app comes built from ``bot.app.open_app``;
this drives its lifecycle: ``start``, ``resume_journal``, ``drain``, ``stop``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator, Sequence

from bot.app import App
from bot.core.ports import PlatformAdapter
from bot.ops.http import OpsServer, ops_routes
from bot.ops.shutdown import HttpMountable
from bot.settings import ConfigError

log = logging.getLogger(__name__)

NO_PLATFORM = (
    "No chat platform is configured, so membot runs heartbeats only (reflection, consolidation). To connect one, "
    "set DISCORD_TOKEN for Discord, or SLACK_BOT_TOKEN with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET "
    "(HTTP) for Slack."
)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, force: asyncio.Event) -> Iterator[None]:
    """The first SIGINT or SIGTERM sets ``stop`` (graceful); a second one sets ``force`` (stop waiting)."""
    loop = asyncio.get_running_loop()
    handled = []

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. not the main thread
            loop.add_signal_handler(sig, on_signal)
            handled.append(sig)
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def serve(
    app: App,
    notify: Callable[[str], None],
    stop: asyncio.Event | None = None,
    adapters: Sequence[PlatformAdapter] | None = None,
    console: PlatformAdapter | None = None,
) -> int:
    """Run the adapters (default: those configured), the scheduler and the health/metrics endpoints until ``stop``
    is set (SIGINT and SIGTERM set it) or an adapter stops by itself; then stop gracefully (``App.drain``).
    Returns the exit code: 0 after a requested stop, 1 when an adapter stopped.

    ``console``: with no platform configured, this console chat runs beside the scheduler (which delivers its user's
    reminders and proactive messages through it); its end stops membot.
    """
    app.topology.check()
    stop = stop or asyncio.Event()
    force = asyncio.Event()
    adapters = app.build_adapters() if adapters is None else list(adapters)
    chat = console if console is not None and not adapters else None
    ops: OpsServer | None = None
    code = 0
    try:
        await app.start([*adapters, chat] if chat is not None else adapters)
        try:
            # after the scheduler: /healthz checks it from the start; a console chat goes on without the endpoints
            ops = await start_ops_endpoints(app, adapters, notify=notify if chat is not None else None)
            with _stop_on_signals(stop, force):
                if app.topology.several_processes:
                    notify(f"this process is {app.topology.describe()}; they share Redis and the Qdrant server")
                if adapters:
                    names = ", ".join(adapter.platform for adapter in adapters)
                    notify(f"membot is running on {names}, with heartbeats. Ctrl-C stops it.")
                elif chat is None:
                    notify(NO_PLATFORM)
                tasks: dict[asyncio.Task[object], PlatformAdapter] = {
                    asyncio.create_task(a.run(), name=f"adapter:{a.platform}"): a for a in adapters
                }
                await app.resume_journal(adapters)  # messages a stopped process kept during a Redis outage
                ending: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait(), name="stop")]
                if chat is not None:
                    ending.append(asyncio.create_task(chat.run(), name="console"))
                try:
                    done, _ = await asyncio.wait([*ending, *tasks], return_when=asyncio.FIRST_COMPLETED)
                    await app.drain([a for task, a in tasks.items() if not task.done()], notify=notify, force=force)
                finally:
                    for task in [*ending, *tasks]:
                        task.cancel()
                    await asyncio.gather(*ending, *tasks, return_exceptions=True)
                for task in done & tasks.keys():
                    problem = "it stopped" if task.cancelled() or task.exception() is None else repr(task.exception())
                    notify(f"the {tasks[task].platform} adapter stopped ({problem}); shutting down.")
                    code = 1
        finally:
            await app.stop()
    finally:
        if ops is not None:
            await ops.stop()
    return code


async def start_ops_endpoints(
    app: App, adapters: Sequence[PlatformAdapter], notify: Callable[[str], None] | None = None
) -> OpsServer | None:
    """Mount /healthz and /metrics on adapters with an HTTP server (Slack HTTP mode), and serve them on
    ``MEMBOT_HTTP_HOST:MEMBOT_HTTP_PORT`` unless that is one of those servers or the port is empty (off).

    A port that cannot be served stops membot with a ConfigError (a deployment relies on its health checks),
    unless ``notify`` is given (a console chat): then it is told and membot goes on without the endpoints."""
    settings = app.settings
    routes = ops_routes(app.health, app.metrics)
    mounted = {address for a in adapters if isinstance(a, HttpMountable) and (address := a.mount(routes))}
    if settings.http_port is None or (settings.http_port and (settings.http_host, settings.http_port) in mounted):
        return None
    server = OpsServer(routes, settings.http_host, settings.http_port)
    try:
        await server.start()
    except OSError as exc:
        problem = (
            f"Cannot serve /healthz and /metrics on {settings.http_host}:{settings.http_port} ({exc.strerror or exc})."
        )
        fix = "Set MEMBOT_HTTP_PORT to a free port, or leave it empty to turn these endpoints off."
        if notify is None:
            raise ConfigError(f"{problem} {fix}") from None
        notify(f"{problem} Chatting on without them. {fix}")
        return None
    return server
