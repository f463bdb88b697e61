"""The discord.py client: gateway events in, handled by ``InboundHandler`` and the slash-command tree.

An ``AutoShardedClient``: it asks Discord's REST API (``GET /gateway/bot``) for the gateway URL and, unless
``DISCORD_SHARD_COUNT`` is set, the shard count, so it follows ``DISCORD_API_BASE_URL`` and scales past the
2,500-server limit of one connection. With ``DISCORD_SHARD_IDS`` this process connects only those shards, so several
processes split the gateway between them. Behind ``DISCORD_API_BASE_URL`` every reconnect stays on that base's
gateway (``gateway.GatewayPin``). Each shard's connection is reported to ``Services.connections`` as
``discord:shard-N`` (from discord.py's shard connect/resumed/disconnect events), which ``/healthz`` reads.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from adapters.discord.commands import MembotTree
from adapters.discord.gateway import GatewayPin, IdentifySpacing
from adapters.discord.inbound import InboundHandler
from adapters.discord.preferences import add_preference_commands
from adapters.discord.shards import DiscordShards
from bot.services import Services

log = logging.getLogger(__name__)

MESSAGE_CACHE_SIZE = 1000
CONNECTION_PREFIX = "discord:"


def shard_connection(shard_id: int | None) -> str:
    """The name ``/healthz`` reports a gateway shard under."""
    return f"{CONNECTION_PREFIX}shard-{shard_id or 0}"


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
        share = DiscordShards.from_settings(services.settings)
        shards = share.connects
        # a fixed share of the gateway (DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT); else Discord's count, all here
        sharding: dict[str, Any] = {}
        if shards is not None:
            sharding = {"shard_count": share.count, "shard_ids": list(shards)}
        super().__init__(
            **sharding,
            intents=membot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=MESSAGE_CACHE_SIZE,
            chunk_guilds_at_startup=False,
        )
        self.tree = MembotTree(self, services)
        add_preference_commands(self.tree, services)
        self._inbound = InboundHandler(services, self)
        self.connections = services.connections
        self._identify_spacing = IdentifySpacing()
        self._pin: GatewayPin | None = None
        if services.settings.discord_api_base_url:
            self._pin = GatewayPin()
            self._pin.install(self.http)

    async def launch_shards(self) -> None:
        """Learn the gateway (pinned behind DISCORD_API_BASE_URL) and the shards this process serves, which
        count as connecting from now on, then let discord.py connect them."""
        if not self.is_closed():
            count = self.shard_count
            if self._pin is not None or count is None:
                rest_count, url, _ = await self.http.get_bot_gateway()
                if self._pin is not None:
                    self._pin.configure(url)
                count = count or rest_count
            for shard_id in self.shard_ids or range(count):
                self.connections.expect(shard_connection(shard_id))
        await super().launch_shards()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Discord's pacing: a random 1–5 s before a re-IDENTIFY, at most one IDENTIFY per 5 s."""
        await self._identify_spacing.wait(initial)

    async def on_shard_connect(self, shard_id: int) -> None:
        self.connections.up(shard_connection(shard_id), "identified")

    async def on_shard_resumed(self, shard_id: int) -> None:
        self.connections.up(shard_connection(shard_id), "resumed")

    async def on_shard_disconnect(self, shard_id: int) -> None:
        if not self.is_closed():
            self.connections.down(shard_connection(shard_id), "gateway connection lost; reconnecting")

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
