"""Platform connections as the adapters see them, for ``/healthz``: each Discord gateway shard, the Slack Socket
Mode socket, the Slack HTTP listener.

Adapters report through ``PlatformConnections`` (``expect`` when they start connecting, ``up`` when a connection
works, ``down`` when it is lost, ``forget`` when they stop); ``Health`` reads ``report(grace)``. A connection that
has been down (or never came up) for longer than the grace period fails the health check, naming itself; a shorter
outage is reported but healthy, because every platform SDK reconnects by itself and a load balancer should not
restart membot for a blip. This module knows no platform: names are the adapters' business (``discord:shard-0``,
``slack:socket``, ``slack:http``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ConnectionState", "PlatformConnections"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionState:
    """Whether a connection works, since when (``time.monotonic()``), and a short detail (never a secret)."""

    up: bool
    since: float
    detail: str


class PlatformConnections:
    """The state of every platform connection of this process, by name."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, ConnectionState] = {}

    def expect(self, name: str, detail: str = "connecting") -> None:
        """``name`` is being opened: it counts as down (since now) until ``up`` is reported, unless already known."""
        if name not in self._states:
            self._states[name] = ConnectionState(False, self._clock(), detail)

    def up(self, name: str, detail: str = "connected") -> None:
        previous = self._states.get(name)
        if previous is not None and not previous.up:
            log.info("platform connection up", extra={"connection": name, "detail": detail})
        since = previous.since if previous is not None and previous.up else self._clock()
        self._states[name] = ConnectionState(True, since, detail)

    def down(self, name: str, detail: str) -> None:
        """``name`` is lost (the SDK is reconnecting); an outage keeps the time it began."""
        previous = self._states.get(name)
        if previous is None or previous.up:
            log.warning("platform connection down", extra={"connection": name, "detail": detail})
            self._states[name] = ConnectionState(False, self._clock(), detail)
        else:
            self._states[name] = ConnectionState(False, previous.since, detail)

    def forget(self, prefix: str) -> None:
        """Drop every connection whose name starts with ``prefix`` (its adapter stopped)."""
        for name in [name for name in self._states if name.startswith(prefix)]:
            del self._states[name]

    def states(self) -> dict[str, ConnectionState]:
        return dict(self._states)

    def report(self, grace: float) -> dict[str, dict[str, Any]]:
        """One health component per connection: ``ok`` unless it has been down longer than ``grace`` seconds."""
        now = self._clock()
        components: dict[str, dict[str, Any]] = {}
        for name, state in sorted(self._states.items()):
            seconds = round(now - state.since, 1)
            if state.up:
                ok, detail = True, f"{state.detail} ({seconds:g}s)"
            else:
                ok = seconds <= grace
                budget = "within" if ok else "longer than"
                detail = f"down {seconds:g}s, {budget} the {grace:g}s grace: {state.detail}"
            components[name] = {"ok": ok, "detail": detail, "connected": state.up, "since_s": seconds}
        return components
