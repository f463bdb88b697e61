"""Discord sharding: which gateway shards this process connects (``DISCORD_SHARD_IDS`` of ``DISCORD_SHARD_COUNT``).

Several processes split the gateway between them by giving each its share of the shard ids; with neither setting,
one process connects every shard, as many as Discord recommends. ``DiscordShards`` is this process's share: the
client connects ``connects``, and ``bot.ops.deployment.Topology`` (given it by the composition root) counts a
partial share as one of several processes (which need a Qdrant server).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import ConfigError, Settings, parse_shard_ids

__all__ = ["DiscordShards"]


@dataclass(frozen=True)
class DiscordShards:
    """This process's share of the Discord gateway shards."""

    count: int | None  # DISCORD_SHARD_COUNT; None: Discord says how many (all in this process)
    ids: tuple[int, ...]  # DISCORD_SHARD_IDS; () means all of them

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordShards:
        return cls(count=settings.discord_shard_count, ids=parse_shard_ids(settings.discord_shard_ids))

    @property
    def connects(self) -> tuple[int, ...] | None:
        """The shard ids this process connects (None: every shard, as many as Discord recommends)."""
        if self.ids:
            return self.ids
        if self.count is not None:
            return tuple(range(self.count))
        return None

    @property
    def partial(self) -> bool:
        """Whether other processes connect the other shards."""
        return self.count is not None and len(self.connects or ()) < self.count

    def check(self) -> None:
        """Raise ConfigError when the shard settings cannot work (the message names the variables to change)."""
        if self.ids and self.count is None:
            raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total number of shards).")
        if self.count is not None and any(i >= self.count for i in self.ids):
            raise ConfigError(
                f"DISCORD_SHARD_IDS ({','.join(map(str, self.ids))}) must be below DISCORD_SHARD_COUNT "
                f"({self.count}): shard ids run from 0 to DISCORD_SHARD_COUNT-1."
            )

    def describe(self) -> str:
        """For the start-up notice, e.g. ``Discord shards 0,1 of 4`` ("" when no count is set)."""
        if self.count is None:
            return ""
        return f"Discord shards {','.join(map(str, self.connects or ()))} of {self.count}"
