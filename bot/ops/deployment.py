"""How this process fits a deployment: Discord shards, replicas, and what running several processes requires.

One membot process may be one of several sharing a Redis: Discord shards split the gateway between processes
(``DISCORD_SHARD_IDS`` of ``DISCORD_SHARD_COUNT``), and Slack HTTP mode runs behind a load balancer as
``MEMBOT_REPLICAS`` identical processes. Everything per agent (lock, queue, core memory, heartbeat firings) is
already shared through Redis; recall and archival memory need a Qdrant server, because embedded Qdrant belongs to
one process. ``Topology.check`` refuses to start a multi-process deployment without ``QDRANT_URL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["Topology", "parse_shard_ids"]


def parse_shard_ids(text: str) -> tuple[int, ...]:
    """``"0,1"``, ``"0-3"``, ``"0-1,4"`` → sorted distinct shard ids; ``""`` → (). Raises ValueError."""
    ids: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise ValueError(f"invalid shard id {part!r}: use numbers and ranges, e.g. 0,1 or 0-3") from None
        if low < 0 or high < low:
            raise ValueError(f"invalid shard range {part!r}: ids start at 0 and ranges go up, e.g. 0-3")
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


@dataclass(frozen=True)
class Topology:
    """This process's share of the deployment."""

    replicas: int  # MEMBOT_REPLICAS: identical processes (Slack HTTP behind a load balancer)
    shard_count: int | None  # DISCORD_SHARD_COUNT; None: Discord says how many (all in this process)
    shard_ids: tuple[int, ...]  # this process's Discord shards; () means all of them
    qdrant_url: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(
            replicas=settings.replicas,
            shard_count=settings.discord_shard_count,
            shard_ids=parse_shard_ids(settings.discord_shard_ids),
            qdrant_url=settings.qdrant_url,
        )

    @property
    def discord_shards(self) -> tuple[int, ...] | None:
        """The shard ids this process connects (None: every shard, as many as Discord recommends)."""
        if self.shard_ids:
            return self.shard_ids
        if self.shard_count is not None:
            return tuple(range(self.shard_count))
        return None

    @property
    def several_processes(self) -> bool:
        """Whether other membot processes serve the same users (replicas, or a share of the Discord shards)."""
        partial = self.shard_count is not None and len(self.discord_shards or ()) < self.shard_count
        return self.replicas > 1 or partial

    def check(self) -> None:
        """Raise ConfigError when the settings cannot work (the message names the variables to change)."""
        from bot.settings import ConfigError

        if self.shard_ids and self.shard_count is None:
            raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total number of shards).")
        if self.shard_count is not None and any(i >= self.shard_count for i in self.shard_ids):
            raise ConfigError(
                f"DISCORD_SHARD_IDS ({','.join(map(str, self.shard_ids))}) must be below DISCORD_SHARD_COUNT "
                f"({self.shard_count}): shard ids run from 0 to DISCORD_SHARD_COUNT-1."
            )
        if self.several_processes and not self.qdrant_url:
            raise ConfigError(
                "This process is one of several (" + self.describe() + "), but recall and archival memory are in "
                "embedded Qdrant, which belongs to one process: set QDRANT_URL to a Qdrant server shared by all of "
                "them (deploy/compose.yaml runs one)."
            )

    def describe(self) -> str:
        """One line for the start-up notice, e.g. ``Discord shards 0,1 of 4; 1 of 3 replicas``."""
        parts = []
        if self.shard_count is not None:
            parts.append(f"Discord shards {','.join(map(str, self.discord_shards or ()))} of {self.shard_count}")
        if self.replicas > 1:
            parts.append(f"one of {self.replicas} replicas")
        return "; ".join(parts) or "a single process"
