"""The Discord ``PlatformAdapter``: runs the client until cancelled and sends proactive messages.

``DISCORD_API_BASE_URL`` moves discord.py's REST base (``discord.http.Route.BASE``, which its interaction and
webhook calls use too) to another host while the adapter runs; the gateway URL then comes from that host's
``GET /gateway/bot`` answer, and every reconnect stays there (``gateway.GatewayPin``). ``Route.BASE`` is a class
attribute, so this is process-wide: run one Discord connection per process (``membot run`` does).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import discord
from discord.http import Route

from adapters.discord.client import CONNECTION_PREFIX, MembotClient
from adapters.discord.sink import send_chunks
from bot.core.events import ReplyAddress
from bot.services import Services
from bot.settings import ConfigError

log = logging.getLogger(__name__)

API_PATH = "/api/v10"
AUTHENTICATION_FAILED = 4004  # the gateway's close code for a token it does not accept
REJECTED_TOKEN = (
    "Discord rejected DISCORD_TOKEN. Copy the bot token again from the developer portal "
    "(your application → Bot → Reset Token)."
)


def rest_base(url: str) -> str:
    """The REST base for ``DISCORD_API_BASE_URL``: used as given, with ``/api/v10`` added to a bare host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"DISCORD_API_BASE_URL must be an http(s) URL such as https://discord.com{API_PATH}")
    base = url.strip().rstrip("/")
    return base if parts.path.strip("/") else base + API_PATH


@contextmanager
def discord_rest_base(url: str | None) -> Iterator[None]:
    """Point discord.py's REST routes at ``url`` (when set) for the duration of the block."""
    if not url:
        yield
        return
    previous = Route.BASE
    Route.BASE = rest_base(url)
    try:
        yield
    finally:
        Route.BASE = previous


class DiscordAdapter:
    """membot on Discord: ``run()`` connects and serves until cancelled."""

    platform = "discord"

    def __init__(self, services: Services) -> None:
        settings = services.settings
        if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
            raise ConfigError("The Discord adapter needs DISCORD_TOKEN (the bot token from the developer portal).")
        if settings.discord_api_base_url:
            rest_base(settings.discord_api_base_url)  # fail at startup on a malformed URL
        self._token = settings.discord_token
        self._api_base = settings.discord_api_base_url
        self.client = MembotClient(services)

    async def run(self) -> None:
        """Log in, sync slash commands, and serve gateway events until cancelled; then close the connection."""
        with discord_rest_base(self._api_base):
            try:
                await self.client.start(self._token.get_secret_value())
            except discord.LoginFailure:
                raise ConfigError(REJECTED_TOKEN) from None
            except discord.PrivilegedIntentsRequired:
                raise ConfigError(
                    "Discord refused the Message Content intent. Enable it in the developer portal "
                    "(your application → Bot → Privileged Gateway Intents → Message Content Intent)."
                ) from None
            except discord.ConnectionClosed as exc:  # 4004, 4010-4013: Discord says not to reconnect
                if exc.code == AUTHENTICATION_FAILED:
                    raise ConfigError(REJECTED_TOKEN) from None
                raise
            finally:
                await self.client.close()
                self.client.connections.forget(CONNECTION_PREFIX)
                log.info("Discord connection closed")

    async def stop_accepting(self) -> None:
        """Close the gateway shards (no new events) but keep the REST session, so turns in flight still answer."""
        for shard in self.client.shards.values():
            if not shard.is_closed():
                await shard.disconnect()
        log.info("Discord gateway closed; no longer taking events")

    async def drain(self) -> None:
        """Nothing of its own: each message's turn is tracked by the runtime, which shutdown waits for."""

    async def send_direct(self, address: ReplyAddress, text: str) -> None:
        """Send ``text`` where the user last spoke (their DM channel, or a thread/channel), pinging nobody else."""
        if self.client.user is None or self.client.is_closed():
            raise RuntimeError("the Discord adapter is not connected")
        channel = self.client.get_partial_messageable(int(address.thread_id or address.channel_id))
        await send_chunks(channel, text, mentionable=discord.Object(int(address.user_id)))
