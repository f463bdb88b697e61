"""``membot doctor``'s Discord check: log in over REST as discord.py does (``GET /users/@me``) and name the bot."""

from __future__ import annotations

import asyncio

from discord.errors import HTTPException, LoginFailure
from discord.http import HTTPClient

from adapters.discord.adapter import discord_rest_base
from bot.settings import Settings


async def check_discord_token(settings: Settings, within: float = 15.0) -> str:
    """Who DISCORD_TOKEN logs in as; raises RuntimeError with what to fix when Discord refuses it or is unreachable."""
    if settings.discord_token is None:
        raise RuntimeError("DISCORD_TOKEN is not set")
    http = HTTPClient(asyncio.get_running_loop())
    try:
        with discord_rest_base(settings.discord_api_base_url):
            async with asyncio.timeout(within):
                me = await http.static_login(settings.discord_token.get_secret_value())
    except LoginFailure:
        raise RuntimeError("Discord refused DISCORD_TOKEN (401): copy the bot token again from the portal") from None
    except HTTPException as exc:
        raise RuntimeError(f"Discord answered {exc.status} to GET /users/@me") from None
    except (TimeoutError, OSError) as exc:
        raise RuntimeError(f"Discord's API is unreachable ({type(exc).__name__}: {exc})") from None
    finally:
        await http.close()
    return f"logged in as {me['username']} (id {me['id']})"
