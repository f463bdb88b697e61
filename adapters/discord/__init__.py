"""membot on Discord: a discord.py client that feeds the runtime and answers like a well-kept bot.

Layout: ``adapter`` (the PlatformAdapter: run, send_direct, REST base) · ``client`` (discord.py client) ·
``shards`` (which gateway shards this process connects) · ``inbound`` (message → turn) · ``normalize`` (pure: answer
or not, InboundMessage) · ``sink`` (replies, typing) · ``split`` (2,000-character messages) ·
``commands``/``confirm``/``render`` (slash commands) · ``attachments``.
"""

from __future__ import annotations

from adapters.discord.adapter import DiscordAdapter
from bot.core.ports import PlatformAdapter
from bot.services import Services


def build_discord_adapter(services: Services) -> PlatformAdapter:
    """The Discord adapter for ``membot run`` (needs DISCORD_TOKEN)."""
    return DiscordAdapter(services)


__all__ = ["DiscordAdapter", "build_discord_adapter"]
