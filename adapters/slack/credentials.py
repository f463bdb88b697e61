"""``membot doctor``'s Slack check: ``auth.test`` with the bot token, and ``apps.connections.open`` with the app
token when Socket Mode is configured (the socket URL it returns is not used)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import api_base_url
from bot.settings import Settings


async def check_slack_tokens(settings: Settings, within: float = 15.0) -> str:
    """Which workspace and bot SLACK_BOT_TOKEN is; raises RuntimeError with what to fix when a token is refused."""
    if settings.slack_bot_token is None:
        raise RuntimeError("SLACK_BOT_TOKEN is not set")
    base = api_base_url(settings.slack_api_url)
    bot = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=base)
    me = await _asked(bot.auth_test(), "auth.test", "SLACK_BOT_TOKEN", within)
    detail = f"{me.get('user')} in {me.get('team')} ({me.get('team_id')})"
    if settings.slack_app_token is not None:
        app_token = settings.slack_app_token.get_secret_value()
        opened = AsyncWebClient(base_url=base).apps_connections_open(app_token=app_token)
        await _asked(opened, "apps.connections.open", "SLACK_APP_TOKEN", within)
        detail += "; the Socket Mode token works"
    return detail


async def _asked(call: Awaitable[Any], method: str, setting: str, within: float) -> Any:
    try:
        async with asyncio.timeout(within):
            return await call
    except SlackApiError as exc:
        error = exc.response.get("error", "error")
        raise RuntimeError(f"Slack refused {setting} ({method}: {error}); copy it again from the app's page") from None
    except (TimeoutError, OSError, SlackClientError) as exc:
        raise RuntimeError(f"Slack's Web API is unreachable ({type(exc).__name__}: {exc})") from None
