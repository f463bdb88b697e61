"""``/healthz``: each component (Redis, Qdrant, the heartbeat scheduler) checked at once, each within a timeout,
and each platform connection (``bot.ops.connections``) as its adapter last reported it.

A check is a coroutine function that returns a short detail or raises; the composition root builds them from the
live stores, so this module knows no client. A platform connection fails the report once it has been down longer
than the grace period. While membot shuts down the report says ``draining`` and is unhealthy, so a load balancer
stops sending it work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.ops.connections import PlatformConnections

__all__ = ["Check", "Health", "HealthReport"]

Check = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class HealthReport:
    """The outcome of every check; ``ok`` only when each passed and membot is not shutting down."""

    ok: bool
    status: str  # "ok", "unhealthy" or "draining"
    components: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "components": self.components}


class Health:
    """Runs the named checks concurrently; a check that raises or exceeds ``timeout`` seconds fails."""

    def __init__(self, checks: Mapping[str, Check], timeout: float = 3.0) -> None:
        self._checks = dict(checks)
        self._timeout = timeout
        self.draining = False
        self._platforms: list[tuple[PlatformConnections, float]] = []

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def watch(self, connections: PlatformConnections, grace: float) -> None:
        """Report each of ``connections`` too; one down longer than ``grace`` seconds makes the report unhealthy."""
        self._platforms.append((connections, grace))

    async def report(self) -> HealthReport:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        components = dict(zip(names, results, strict=True))
        for connections, grace in self._platforms:
            components.update(connections.report(grace))
        healthy = all(part["ok"] for part in components.values())
        status = "draining" if self.draining else "ok" if healthy else "unhealthy"
        return HealthReport(healthy and not self.draining, status, components)

    async def _run(self, check: Check) -> dict[str, Any]:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                detail = await check()
        except TimeoutError:
            result: dict[str, Any] = {"ok": False, "detail": f"no answer within {self._timeout:g}s"}
        except Exception as exc:  # a health check reports failures, it never raises them
            result = {"ok": False, "detail": f"{type(exc).__name__}: {str(exc)[:200]}"}
        else:
            result = {"ok": True, "detail": detail}
        result["ms"] = round(1000 * (time.monotonic() - started), 1)
        return result
