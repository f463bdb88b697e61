"""What every Slack listener needs, built once per adapter, and the tracked set of background tasks.

Listeners only acknowledge and hand the work to :class:`BackgroundTasks`; the adapter waits for (or cancels)
those tasks when it stops, so nothing is left running or silently lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.channels import Allowlist
from bot.services import Services

from .directory import SlackDirectory

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Runs coroutines in tracked tasks; failures are logged, never lost."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        if self._closed:
            work.close()
            log.warning("adapter is stopping; work dropped", extra={"task": name})
            return
        task = asyncio.create_task(work, name=f"slack:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("slack background task failed", extra={"task": task.get_name()}, exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until every task (including ones started meanwhile) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting work, give running tasks ``grace`` seconds, then cancel the rest."""
        self._closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


@dataclass(frozen=True)
class SlackDeps:
    """The membot services, the Web API client, look-ups and the background task set."""

    services: Services
    client: AsyncWebClient
    directory: SlackDirectory
    tasks: BackgroundTasks
    bot_token: str
    allowlist: Allowlist = field(default_factory=Allowlist)  # MEMBOT_ALLOWED_CHANNELS / _USERS
