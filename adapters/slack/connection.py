"""The Slack connection as ``/healthz`` reports it (``Services.connections``).

- Socket Mode (``slack:socket``): slack_sdk's ``SocketModeClient.is_connected()`` (not closed, not stale, the
  current WebSocket open, ping/pong answered), polled twice a second. The SDK reconnects by itself (on a close
  frame, a ``disconnect`` envelope, or a failed ping), so this only watches.
- HTTP mode (``slack:http``): the listener is bound and answering: a GET of the events path on the bound port
  (any HTTP status counts; it is POST-only) every few seconds, on a new connection each time.

Either connection counts as down from the moment the adapter starts until it first works.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient

from bot.ops.connections import PlatformConnections

__all__ = ["HTTP_LISTENER", "SOCKET", "watch_listener", "watch_socket"]

log = logging.getLogger(__name__)

SOCKET = "slack:socket"
HTTP_LISTENER = "slack:http"
SOCKET_POLL_SECONDS = 0.5  # is_connected() reads in-memory state: cheap
LISTENER_PROBE_SECONDS = 3.0
LISTENER_PROBE_TIMEOUT = 2.0


async def watch_socket(socket_mode: AsyncBaseSocketModeClient, connections: PlatformConnections) -> None:
    """Report the Socket Mode connection until cancelled."""
    connections.expect(SOCKET)
    while True:
        if await socket_mode.is_connected():
            connections.up(SOCKET, "socket mode connected")
        else:
            connections.down(SOCKET, "socket mode disconnected; slack_sdk is reconnecting")
        await asyncio.sleep(SOCKET_POLL_SECONDS)


async def watch_listener(url: str, connections: PlatformConnections) -> None:
    """Report whether the HTTP listener at ``url`` answers, until cancelled."""
    connections.expect(HTTP_LISTENER)
    timeout = aiohttp.ClientTimeout(total=LISTENER_PROBE_TIMEOUT)
    # a new connection per probe, as Slack and a load balancer open them: a kept-alive one is still served by a
    # listener that no longer accepts connections
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        while True:
            try:
                async with session.get(url) as response:
                    await response.read()
                connections.up(HTTP_LISTENER, "http listener answering")
            except (aiohttp.ClientError, TimeoutError) as exc:
                connections.down(HTTP_LISTENER, f"http listener not answering ({type(exc).__name__})")
            await asyncio.sleep(LISTENER_PROBE_SECONDS)
