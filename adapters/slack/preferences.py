"""``/memory proactive on|off [quiet-hours] [timezone]`` and ``/memory timezone [zone]``: a user's own settings.

Both are kept with the proactive settings (``bot.runtime.heartbeat.ProactiveControl``); the time zone is the one
reminders and quiet hours use. Answers are ephemeral, as every ``/memory`` answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.admin.authz import Action, Actor
from bot.core.events import AgentKey, utc_now
from bot.runtime.proactive import InvalidProactiveSetting

from .deps import SlackDeps
from .mrkdwn import escape

Respond = Callable[..., Awaitable[Any]]

PROACTIVE_USAGE = (
    "Usage: `/memory proactive on|off [quiet-hours] [timezone]`, e.g. `/memory proactive on 22-08 Europe/Berlin`."
)
TIMEZONE_USAGE = "Usage: `/memory timezone` shows your time zone; `/memory timezone Europe/Berlin` sets it."


async def _ephemeral(respond: Respond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


def _own(deps: SlackDeps, team: str, user: str) -> AgentKey:
    agent = AgentKey("slack", team, user)
    deps.services.authz.check(Actor("slack", user, team), Action.PROACTIVE, agent)
    return agent


async def proactive_command(deps: SlackDeps, respond: Respond, team: str, user: str, rest: str) -> None:
    words = rest.split()
    if not words or words[0].lower() not in ("on", "off") or len(words) > 3:
        await _ephemeral(respond, PROACTIVE_USAGE)
        return
    agent = _own(deps, team, user)
    quiet_hours = words[1] if len(words) > 1 else None
    timezone = words[2] if len(words) > 2 else None
    try:
        policy = await deps.services.proactive.set(
            agent, words[0].lower() == "on", quiet_hours=quiet_hours, timezone=timezone
        )
    except InvalidProactiveSetting as exc:
        await _ephemeral(respond, f"Sorry, {escape(str(exc))}.")
        return
    await _ephemeral(respond, f"Proactive messages for you: {escape(policy.describe())}.")


async def timezone_command(deps: SlackDeps, respond: Respond, team: str, user: str, rest: str) -> None:
    """Show the caller's time zone, or set it to ``rest`` (an IANA name such as Europe/Berlin)."""
    if len(rest.split()) > 1:
        await _ephemeral(respond, TIMEZONE_USAGE)
        return
    agent = _own(deps, team, user)
    try:
        setting = await deps.services.proactive.timezone(agent, rest or None)
    except InvalidProactiveSetting as exc:
        await _ephemeral(respond, f"Sorry, {escape(str(exc))}.")
        return
    verb = "is now" if rest else "is"
    hint = "" if setting.own else " Set yours with e.g. `/memory timezone Europe/Berlin`."
    await _ephemeral(respond, f"Your time zone {verb} {escape(setting.describe(utc_now()))}.{hint}")
