"""Which gateway the discord.py client connects to, and how long it waits before it IDENTIFYs again.

**Pinning.** Behind ``DISCORD_API_BASE_URL`` the gateway is what that REST base answers to ``GET /gateway/bot``
(the *configured gateway*). discord.py leaves it on three paths: after INVALID_SESSION with ``d: false`` it resets
its gateway to ``DiscordWebSocket.DEFAULT_GATEWAY`` (Discord's public ``wss://gateway.discord.gg``), a shard that
reconnects from scratch (``Shard.reconnect``) or a client started with a fixed shard count connect there too, and a
resume goes to READY's ``resume_gateway_url``, wherever that points. ``GatewayPin`` wraps the one method every
gateway socket is opened through, ``HTTPClient.ws_connect(url, *, compress)`` (``DiscordWebSocket.from_client``
calls it for the first connection, each resume, each re-identify and each shard reconnect, in discord.py 1.x
through 2.7), on our client's own ``HTTPClient`` only: a URL off the configured gateway's origin is rewritten to
the configured gateway, keeping discord.py's query (``v``, ``encoding``, ``compress``). discord.py is not forked
and no class attribute is changed, so nothing else in the process is affected.

**Resume URL.** A ``resume_gateway_url`` on the configured gateway's origin (scheme, host and port; any path) is
used as Discord documents; one elsewhere is replaced by the configured gateway. A stand-in or gateway proxy is the
whole of Discord for this process: following a READY that names another host (e.g. a proxy relaying Discord's own
READY) would take the bot off the gateway it was told to use, which is the bug this fixes. When the configured
gateway is Discord's own (``*.discord.gg``, e.g. a REST-only proxy), Discord's regional resume URLs are followed.

**Re-IDENTIFY.** Discord asks a client to wait a random 1–5 s after INVALID_SESSION before it IDENTIFYs again, and
allows ``max_concurrency`` (1 for most bots) IDENTIFYs per 5 s. ``IdentifySpacing`` does both through discord.py's
documented ``Client.before_identify_hook``: a random 1–5 s wait, stretched so two IDENTIFYs of this process are at
least 5 s apart (discord.py's default hook always waits 5 s).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import yarl

__all__ = ["GatewayPin", "IdentifySpacing"]

log = logging.getLogger(__name__)

IDENTIFY_INTERVAL = 5.0  # seconds per IDENTIFY with max_concurrency 1
REIDENTIFY_JITTER = (1.0, 5.0)  # Discord: wait a random 1–5 s after INVALID_SESSION before IDENTIFY


def _is_discord(host: str | None) -> bool:
    return host is not None and (host == "discord.gg" or host.endswith(".discord.gg"))


class GatewayPin:
    """Keeps every gateway socket of one discord.py client on the configured gateway (set by ``configure``)."""

    def __init__(self) -> None:
        self.configured: yarl.URL | None = None

    def configure(self, url: str) -> None:
        self.configured = yarl.URL(url)
        log.info("discord gateway pinned", extra={"gateway": str(self.configured.with_query(None))})

    def allows(self, url: yarl.URL) -> bool:
        configured = self.configured
        if configured is None:
            return True
        same_origin = (url.scheme, url.host, url.port) == (configured.scheme, configured.host, configured.port)
        return same_origin or (_is_discord(url.host) and _is_discord(configured.host))

    def pinned(self, url: str) -> str:
        """``url`` itself when the pin allows it, else the configured gateway with ``url``'s query."""
        target = yarl.URL(url)
        if self.configured is None or self.allows(target):
            return url
        pinned = str(self.configured.with_query(target.query))
        log.info("discord gateway kept on the configured one", extra={"asked": str(target.with_query(None))})
        return pinned

    def install(self, http: Any) -> None:
        """Route ``http.ws_connect`` (discord.py's ``HTTPClient``, this client's instance only) through the pin."""
        connect: Callable[..., Awaitable[Any]] = http.ws_connect  # fails loudly if discord.py renamed it

        async def ws_connect(url: str, **options: Any) -> Any:
            return await connect(self.pinned(str(url)), **options)

        http.ws_connect = ws_connect


class IdentifySpacing:
    """What ``before_identify_hook`` waits: nothing before the first IDENTIFY; before any other, a random 1–5 s,
    and at least ``IDENTIFY_INTERVAL`` since this process's previous IDENTIFY."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: float | None = None

    def delay(self, initial: bool) -> float:
        if initial:
            return 0.0
        jitter = random.uniform(*REIDENTIFY_JITTER)
        return jitter if self._last is None else max(jitter, IDENTIFY_INTERVAL - (self._clock() - self._last))

    async def wait(self, initial: bool) -> None:
        delay = self.delay(initial)
        self._last = self._clock() + delay  # reserve the slot before sleeping: shards identify one at a time
        if delay:
            await asyncio.sleep(delay)
