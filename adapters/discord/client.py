"""The discord.py client: gateway events in, handled by ``InboundHandler`` and the slash-command tree.

An ``AutoShardedClient``: it asks Discord's REST API (``GET /gateway/bot``) for the gateway URL and, unless
``DISCORD_SHARD_COUNT`` is set, the shard count, so it follows ``DISCORD_API_BASE_URL`` and scales past the
2,500-server limit of one connection. With ``DISCORD_SHARD_IDS`` this process connects only those shards, so several
processes split the gateway between them.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket

from adapters.discord.commands import MembotTree
from adapters.discord.inbound import InboundHandler
from bot.deployment import Topology
from bot.services import Services

log = logging.getLogger(__name__)

MESSAGE_CACHE_SIZE = 1000


def membot_intents() -> discord.Intents:
    """Servers, server and DM messages, and their content (a privileged intent, enabled in the developer portal)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    return intents


class MembotClient(discord.AutoShardedClient):
    """membot on Discord. Pings nobody unless a send says otherwise (see ``sink.allowed_mentions_for``)."""

    def __init__(self, services: Services) -> None:
        # membot has no voice features: skip discord.py's start-up warnings about optional voice libraries
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        topology = Topology.from_settings(services.settings)
        shards = topology.discord_shards
        # a fixed share of the gateway (DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT); else Discord's count, all here
        sharding: dict[str, Any] = {}
        if shards is not None:
            sharding = {"shard_count": topology.shard_count, "shard_ids": list(shards)}
        super().__init__(
            **sharding,
            intents=membot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=MESSAGE_CACHE_SIZE,
            chunk_guilds_at_startup=False,
        )
        self.tree = MembotTree(self, services)
        self._inbound = InboundHandler(services, self)
        self._gateway_from_rest = bool(services.settings.discord_api_base_url)

    async def launch_shards(self) -> None:
        """With a fixed shard count discord.py connects to Discord's default gateway; behind DISCORD_API_BASE_URL
        ask that REST base for the gateway URL instead (the adapter restores the default when it stops)."""
        if self.shard_count is not None and self._gateway_from_rest:
            _, url, _ = await self.http.get_bot_gateway()
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await super().launch_shards()

    async def setup_hook(self) -> None:
        """Register the slash commands with Discord (global commands; runs once per login)."""
        try:
            synced = await self.tree.sync()
        except discord.HTTPException as exc:
            log.warning("could not sync slash commands", extra={"status": exc.status, "code": exc.code})
            return
        log.info("slash commands synced", extra={"count": len(synced)})

    async def on_ready(self) -> None:
        log.info("connected to Discord", extra={"user_id": self.user.id if self.user else None})

    async def on_message(self, message: discord.Message) -> None:
        await self._inbound.handle(message)

    async def close(self) -> None:
        self.tree.stop_views()
        await super().close()
