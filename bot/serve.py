"""``membot run``: every configured chat platform plus the heartbeat scheduler, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence

from bot.app import App, build_adapters, start_heartbeats
from bot.ports import PlatformAdapter

log = logging.getLogger(__name__)

NO_PLATFORM = (
    "No chat platform is configured, so membot runs heartbeats only (reflection, consolidation). To connect one, "
    "set DISCORD_TOKEN for Discord, or SLACK_BOT_TOKEN with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET "
    "(HTTP) for Slack."
)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. not the main thread
            loop.add_signal_handler(sig, stop.set)
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
    console: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Run the adapters (default: those configured) and the scheduler until ``stop`` is set (SIGINT and SIGTERM set
    it) or an adapter stops by itself. Returns the exit code: 0 after a requested stop, 1 when an adapter stopped.

    ``console``: with no platform configured, this console chat runs beside the scheduler; its end stops membot.
    """
    if app.services is None:
        raise RuntimeError("membot run needs the runtime (open the app with a model)")
    stop = stop or asyncio.Event()
    adapters = build_adapters(app.services) if adapters is None else list(adapters)
    scheduler = await start_heartbeats(app, adapters)
    code = 0
    try:
        with _stop_on_signals(stop):
            if adapters:
                names = ", ".join(adapter.platform for adapter in adapters)
                notify(f"membot is running on {names}, with heartbeats. Ctrl-C stops it.")
            elif console is None:
                notify(NO_PLATFORM)
            tasks: dict[asyncio.Task[object], PlatformAdapter] = {
                asyncio.create_task(a.run(), name=f"adapter:{a.platform}"): a for a in adapters
            }
            waiter: asyncio.Task[object] = asyncio.create_task(
                _until_either(stop, console if not adapters else None), name="stop"
            )
            try:
                done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in [waiter, *tasks]:
                    task.cancel()
                await asyncio.gather(waiter, *tasks, return_exceptions=True)
            for task in done & tasks.keys():
                problem = "it stopped" if task.cancelled() or task.exception() is None else repr(task.exception())
                notify(f"the {tasks[task].platform} adapter stopped ({problem}); shutting down.")
                code = 1
    finally:
        await scheduler.shutdown()
    return code


async def _until_either(stop: asyncio.Event, console: Callable[[], Awaitable[None]] | None) -> None:
    """Wait for ``stop``, or for the console chat to end (EOF), whichever comes first."""
    if console is None:
        await stop.wait()
        return
    chat = asyncio.ensure_future(console())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([chat, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (chat, stopped):
            task.cancel()
        await asyncio.gather(chat, stopped, return_exceptions=True)
