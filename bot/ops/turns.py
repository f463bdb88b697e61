"""Turns in flight: counted per agent so shutdown can wait for them, and measured for ``/metrics``.

``ObservedRuntime`` is the runtime the composition root builds: every user turn (``handle``) and system event
(``run_event``) runs inside ``TurnTracker.track`` and is timed into ``membot_turn_seconds``; every failure the
runtime's error boundaries catch is counted in ``membot_errors_total`` (model errors are counted where the model
is called).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bot.core.agent import TurnReport
from bot.core.events import AgentKey, InboundMessage
from bot.core.ports import ReplySink
from bot.llm.types import ModelError
from bot.ops.metrics import Metrics
from bot.runtime.runtime import EventFailed, Runtime

__all__ = ["ObservedRuntime", "TurnTracker"]


class TurnTracker:
    """Which turns are running in this process, and a way to wait until none is."""

    def __init__(self) -> None:
        self._agents: Counter[AgentKey] = Counter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return sum(self._agents.values())

    @property
    def active_agents(self) -> int:
        return len(self._agents)

    @contextlib.contextmanager
    def track(self, agent: AgentKey) -> Iterator[None]:
        """Count the current task as a turn of ``agent`` while the block runs."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._agents[agent] += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._agents[agent] -= 1
            if self._agents[agent] <= 0:
                del self._agents[agent]
            if task is not None:
                self._tasks.discard(task)
            if not self._agents:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no turn is in flight (turns that start meanwhile are waited for too)."""
        while self._agents:
            await self._idle.wait()

    def cancel_all(self) -> int:
        """Cancel the tasks running turns; return how many were cancelled."""
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        return len(tasks)


class ObservedRuntime(Runtime):
    """The runtime with each turn tracked and measured (``Runtime``'s own arguments pass through)."""

    def __init__(self, *, tracker: TurnTracker, metrics: Metrics, **runtime: Any) -> None:
        super().__init__(**runtime)
        self.tracker = tracker
        self._metrics = metrics
        metrics.track_active(lambda: tracker.active_agents, lambda: tracker.in_flight)

    async def handle(self, message: InboundMessage, sink: ReplySink) -> TurnReport | None:
        with self._observe("message", message.agent_key):
            return await super().handle(message, sink)

    async def run_event(self, agent: AgentKey, text: str, **options: Any) -> TurnReport:
        with self._observe("event", agent):
            return await super().run_event(agent, text, **options)

    def _record_failure(self, exc: BaseException) -> None:
        self._metrics.error(exc)

    @contextlib.contextmanager
    def _observe(self, kind: str, agent: AgentKey) -> Iterator[None]:
        started = time.monotonic()
        try:
            with self.tracker.track(agent):
                yield
        except Exception as exc:
            # model errors are counted where the model was called, EventFailed by the runtime's boundary
            if not isinstance(exc, ModelError | EventFailed):
                self._metrics.error(exc)
            raise
        finally:
            self._metrics.turn(kind, time.monotonic() - started)
