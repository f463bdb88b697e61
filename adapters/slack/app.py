"""The Slack adapter: one Bolt ``AsyncApp``, served over HTTP or Socket Mode, chosen by the settings present.

- Socket Mode when ``SLACK_APP_TOKEN`` (xapp-...) is set: Bolt's ``AsyncSocketModeHandler`` opens the WebSocket
  itself; nothing listens on a port. It is a thin transport into the same ``async_dispatch`` as HTTP.
- HTTP mode when ``SLACK_SIGNING_SECRET`` is set (and no app token): an aiohttp server on
  ``SLACK_HTTP_HOST:SLACK_HTTP_PORT`` takes events, interactivity and the slash command on ``/slack/events``;
  Bolt verifies every request's signature (a wrong or missing one gets 401 before any listener runs).

Web API calls go to ``SLACK_API_URL`` (default Slack's own), so tests and gateways can stand in for Slack; while
the adapter runs they share one connection pool.
The connection (socket or listener) is reported to ``Services.connections`` for ``/healthz`` (``connection``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from enum import StrEnum

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.events import ReplyAddress
from bot.services import Services
from bot.settings import ConfigError, Settings

from .connection import HTTP_LISTENER, SOCKET, watch_listener, watch_socket
from .deps import BackgroundTasks, SlackDeps
from .directory import SlackDirectory
from .listeners import register
from .mrkdwn import format_reply
from .sink import post_message

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
DEFAULT_API_URL = "https://slack.com/api/"
ANY_ADDRESS = {"", "0.0.0.0", "::"}


class SlackMode(StrEnum):
    SOCKET = "socket"
    HTTP = "http"


def choose_mode(settings: Settings) -> SlackMode:
    """Socket Mode with an app token, else HTTP mode with a signing secret; ConfigError names what to set."""
    if not settings.slack_bot_token:
        raise ConfigError("Slack needs SLACK_BOT_TOKEN (the xoxb-... Bot User OAuth Token).")
    if settings.slack_app_token:
        return SlackMode.SOCKET
    if settings.slack_signing_secret:
        return SlackMode.HTTP
    raise ConfigError(
        "Slack needs SLACK_APP_TOKEN (xapp-..., Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode) besides "
        "SLACK_BOT_TOKEN."
    )


class _NoTokenNotice(logging.Filter):
    """Bolt warns that ``token`` is unused whenever SLACK_BOT_TOKEN is in the environment and a client is given;
    membot always gives its client (built from the same token), so the warning says nothing: drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("membot.slack.bolt")
    if not any(isinstance(f, _NoTokenNotice) for f in logger.filters):
        logger.addFilter(_NoTokenNotice())
    return logger


def api_base_url(url: str | None) -> str:
    """The Web API base URL with the trailing slash slack_sdk needs."""
    url = (url or DEFAULT_API_URL).strip()
    return url if url.endswith("/") else url + "/"


class SlackAdapter:
    """membot on Slack: ``run()`` serves until cancelled; ``send_direct()`` posts unprompted messages."""

    platform = "slack"

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.mode = choose_mode(settings)
        assert settings.slack_bot_token is not None  # checked by choose_mode
        token = settings.slack_bot_token.get_secret_value()
        self._settings = settings
        self.connections = services.connections
        self.client = AsyncWebClient(token=token, base_url=api_base_url(settings.slack_api_url))
        self.deps = SlackDeps(
            services, self.client, SlackDirectory(self.client), BackgroundTasks(), token, settings.allowlist()
        )
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self.app = AsyncApp(
            name="membot",
            client=self.client,
            signing_secret=secret,
            process_before_response=True,
            request_verification_enabled=self.mode is SlackMode.HTTP,
            logger=_bolt_logger(),
        )
        register(self.app, self.deps)
        self.ready = asyncio.Event()
        self.port: int | None = None  # HTTP mode: the port actually bound (SLACK_HTTP_PORT=0 picks a free one)
        self._extra_routes: list[web.RouteDef] = []
        self._site: web.TCPSite | None = None
        self._socket_handler: AsyncSocketModeHandler | None = None
        self._close_grace = 5.0  # seconds background work gets when run() is cancelled without a drain first

    async def run(self) -> None:
        """Serve Slack until cancelled; then stop listening and finish (or cancel) background work."""
        # One connection pool for every Web API call while serving: without a session, slack_sdk opens a new
        # connection (and TLS handshake) per call, chat.postMessage included. Same timeout as its own sessions.
        timeout = aiohttp.ClientTimeout(total=self.client.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.client.session = session
            try:
                await self._serve()
            finally:
                self.client.session = None  # calls after run() (none expected) open their own connections

    async def _serve(self) -> None:
        try:
            identity = await self.client.auth_test()
        except SlackApiError as exc:
            raise ConfigError(f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}).") from None
        log.info("slack connected", extra={"team": identity.get("team_id"), "mode": self.mode.value})
        self.connections.expect(SOCKET if self.mode is SlackMode.SOCKET else HTTP_LISTENER)
        try:
            if self.mode is SlackMode.SOCKET:
                await self._serve_socket_mode()
            else:
                await self._serve_http()
        finally:
            self.connections.forget("slack:")
            await self.deps.tasks.close(self._close_grace)

    def mount(self, routes: Sequence[object]) -> tuple[str, int] | None:
        """HTTP mode: serve ``routes`` (e.g. /healthz, /metrics) beside /slack/events; return where they will be."""
        if self.mode is not SlackMode.HTTP:
            return None
        self._extra_routes.extend(route for route in routes if isinstance(route, web.RouteDef))
        return self._settings.slack_http_host, self._settings.slack_http_port

    async def stop_accepting(self) -> None:
        """Take no new events (stop listening, or close the Socket Mode connection); replies can still be sent."""
        self._close_grace = 0.0  # the caller drains, bounded; run() then cancels what is left
        if self._site is not None:
            site, self._site = self._site, None
            await site.stop()
        if self._socket_handler is not None:
            handler, self._socket_handler = self._socket_handler, None
            await handler.close_async()  # type: ignore[no-untyped-call]
        log.info("slack: no longer taking events")

    async def _serve_http(self) -> None:
        web_app = web.Application()
        web_app.router.add_post(EVENTS_PATH, self._dispatch)
        web_app.add_routes(self._extra_routes)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._settings.slack_http_host, self._settings.slack_http_port)
            await site.start()
            self._site = site
            self.port = int(runner.addresses[0][1])
            log.info("slack http mode listening", extra={"port": self.port, "path": EVENTS_PATH})
            self.ready.set()
            host = self._settings.slack_http_host
            probe = f"http://{'127.0.0.1' if host in ANY_ADDRESS else host}:{self.port}{EVENTS_PATH}"
            await _watching(watch_listener(probe, self.connections))
        finally:
            await runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.Response:
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _serve_socket_mode(self) -> None:
        assert self._settings.slack_app_token is not None
        handler = AsyncSocketModeHandler(
            self.app, self._settings.slack_app_token.get_secret_value(), web_client=self.client
        )
        self._socket_handler = handler
        watcher = asyncio.create_task(watch_socket(handler.client, self.connections))
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("slack socket mode connected")
            self.ready.set()
            await _watching(watcher)
        finally:
            watcher.cancel()
            if self._socket_handler is not None:
                self._socket_handler = None
                await handler.close_async()  # type: ignore[no-untyped-call]

    async def drain(self) -> None:
        """Wait until the background work started so far (turns, commands) has finished."""
        await self.deps.tasks.drain()

    async def send_direct(self, address: ReplyAddress, text: str) -> None:
        channel = address.channel_id
        if not channel:
            channel = (await self.client.conversations_open(users=address.user_id))["channel"]["id"]
        for chunk in format_reply(text):
            await post_message(self.client, channel, chunk, address.thread_id)


async def _watching(watcher: Awaitable[None]) -> None:
    """Serve until cancelled while ``watcher`` reports the connection (a watcher that fails is logged, not fatal)."""
    try:
        await watcher
    except Exception:
        log.exception("slack connection watcher failed; /healthz no longer follows the connection")
    await asyncio.Event().wait()
