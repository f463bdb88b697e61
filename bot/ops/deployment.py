"""How this process fits a deployment: replicas, platform shares, and what running several processes requires.

One membot process may be one of several sharing a Redis: Slack HTTP mode runs behind a load balancer as
``MEMBOT_REPLICAS`` identical processes, and a platform may split its connections between processes (Discord
shards: ``adapters/discord/shards.py``), given here by the composition root as a ``Share``. Everything per agent
(lock, queue, core memory, heartbeat firings) is already shared through Redis; recall and archival memory need a
Qdrant server, because embedded Qdrant belongs to one process. ``Topology.check`` refuses to start a multi-process
deployment without ``QDRANT_URL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.settings import ConfigError, Settings

__all__ = ["Share", "Topology"]


class Share(Protocol):
    """A platform's split of its connections between processes (the Discord adapter's shards)."""

    @property
    def partial(self) -> bool:
        """Whether other processes serve the rest."""
        ...

    def check(self) -> None:
        """Raise ConfigError when the settings cannot work."""
        ...

    def describe(self) -> str:
        """This process's share for the start-up notice ("" when the platform is not split)."""
        ...


@dataclass(frozen=True)
class Topology:
    """This process's share of the deployment."""

    replicas: int  # MEMBOT_REPLICAS: identical processes (Slack HTTP behind a load balancer)
    qdrant_url: str | None
    shares: tuple[Share, ...] = ()  # the platforms' splits (Discord shards), from the composition root

    @classmethod
    def from_settings(cls, settings: Settings, shares: Sequence[Share] = ()) -> Topology:
        return cls(replicas=settings.replicas, qdrant_url=settings.qdrant_url, shares=tuple(shares))

    @property
    def several_processes(self) -> bool:
        """Whether other membot processes serve the same users (replicas, or a partial share of a platform)."""
        return self.replicas > 1 or any(share.partial for share in self.shares)

    def check(self) -> None:
        """Raise ConfigError when the settings cannot work (the message names the variables to change)."""
        for share in self.shares:
            share.check()
        if self.several_processes and not self.qdrant_url:
            raise ConfigError(
                "This process is one of several (" + self.describe() + "), but recall and archival memory are in "
                "embedded Qdrant, which belongs to one process: set QDRANT_URL to a Qdrant server shared by all of "
                "them (deploy/compose.yaml runs one)."
            )

    def describe(self) -> str:
        """One line for the start-up notice, e.g. ``Discord shards 0,1 of 4; 1 of 3 replicas``."""
        parts = [described for share in self.shares if (described := share.describe())]
        if self.replicas > 1:
            parts.append(f"one of {self.replicas} replicas")
        return "; ".join(parts) or "a single process"
