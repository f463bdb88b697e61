"""Graceful shutdown of ``membot run``: stop taking new events, finish turns in flight (bounded), then let the
caller close the app (which closes the stores and flushes what they still hold).

Adapters take part through two optional methods (see ``Drainable``): ``stop_accepting`` stops new events while
keeping what in-flight turns need to answer (Discord closes its gateway shards but keeps its REST session; Slack
HTTP mode stops listening), and ``drain`` waits for work they accepted before the turn started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from bot.core.ports import PlatformAdapter
from bot.ops.health import Health
from bot.ops.scheduler import HeartbeatScheduler
from bot.ops.turns import TurnTracker

__all__ = ["Drainable", "HttpMountable", "drain"]

log = logging.getLogger(__name__)

UNWIND_SECONDS = 2.0


@runtime_checkable
class Drainable(Protocol):
    """An adapter that can stop taking events before it is cancelled."""

    async def stop_accepting(self) -> None:
        """Take no new events; keep the connections that turns in flight need to answer."""
        ...

    async def drain(self) -> None:
        """Wait until the work already accepted (turns, commands) has finished."""
        ...


@runtime_checkable
class HttpMountable(Protocol):
    """An adapter with its own HTTP server (Slack HTTP mode) that can serve extra routes."""

    def mount(self, routes: Sequence[object]) -> tuple[str, int] | None:
        """Serve ``routes`` too; return the (host, port) they will be served on, or None if it has no server."""
        ...


async def drain(
    *,
    adapters: Sequence[PlatformAdapter],
    turns: TurnTracker,
    scheduler: HeartbeatScheduler | None,
    health: Health,
    grace: float,
    notify: Callable[[str], None],
    force: asyncio.Event,
) -> None:
    """Stop taking events and wait up to ``grace`` seconds (or until ``force``) for turns in flight; cancel the
    turns still running then. Never raises: the caller must always go on to close the app."""
    health.draining = True
    work: list[Awaitable[object]] = [turns.wait_idle()]
    if scheduler is not None:
        work.append(scheduler.drain())
    for adapter in adapters:
        if isinstance(adapter, Drainable):
            try:
                async with asyncio.timeout(max(grace, 1.0)):
                    await adapter.stop_accepting()
            except Exception:
                log.warning("the %s adapter did not stop taking events cleanly", adapter.platform, exc_info=True)
            work.append(adapter.drain())
    if turns.in_flight:
        notify(f"stopping: finishing {turns.in_flight} turn(s) in flight (at most {grace:g}s; again to force)")
    # shielded: giving up on the wait must not cancel the work behind it here; cancel_all below does that, counted
    shielded = [asyncio.shield(item) for item in work]
    waiting: asyncio.Future[object] = asyncio.ensure_future(asyncio.gather(*shielded, return_exceptions=True))
    forced: asyncio.Future[object] = asyncio.ensure_future(force.wait())
    try:
        await asyncio.wait([waiting, forced], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (waiting, forced):
            future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(waiting, forced, return_exceptions=True)
    cancelled = turns.cancel_all()
    if cancelled:
        notify(f"stopping: {cancelled} turn(s) did not finish in time and were cancelled (their messages are saved)")
        with contextlib.suppress(TimeoutError):  # let them unwind (release their locks) before the stores close
            async with asyncio.timeout(UNWIND_SECONDS):
                await turns.wait_idle()
