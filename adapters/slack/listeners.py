"""Bolt listeners: plain functions registered by :func:`register`. Each one acknowledges and hands off.

The app runs with ``process_before_response=True``: Bolt awaits these listeners before it answers Slack, and
they return at once after putting the real work in the adapter's tracked background tasks. So every request is
acknowledged well within Slack's 3 seconds, and no work runs in an untracked task. Modal submissions are the
one exception: their answer (the next view, or an error) must travel in the acknowledgement itself.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp

from .commands import handle_action, handle_command
from .conversation import handle_message_event
from .deps import SlackDeps
from .home import FORGET_CONFIRM_VIEW, FORGET_QUERY_VIEW, on_forget_confirm, on_forget_query, publish_home

MEMORY_ACTIONS = re.compile(r"^memory_")


def _header(request: Any, name: str) -> str | None:
    values = (getattr(request, "headers", None) or {}).get(name) or [None]
    return str(values[0]) if values[0] is not None else None


def register(app: AsyncApp, deps: SlackDeps) -> None:
    """Attach membot's listeners to ``app``."""

    async def on_message(body: dict[str, Any], context: Any, request: Any) -> None:
        retry = _header(request, "x-slack-retry-num")
        bot_user_id = context.get("bot_user_id")
        deps.tasks.spawn(handle_message_event(deps, body, bot_user_id, retry), f"event:{body.get('event_id')}")

    async def on_home_opened(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab") == "home" and event.get("user"):
            deps.tasks.spawn(publish_home(deps, str(body.get("team_id") or ""), str(event["user"])), "home")

    async def on_memory_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        deps.tasks.spawn(handle_command(deps, command, respond), "command:/memory")

    async def on_memory_action(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        deps.tasks.spawn(handle_action(deps, body, respond), "action")

    async def on_forget_query_view(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await on_forget_query(deps, ack, body, view)

    async def on_forget_confirm_view(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await on_forget_confirm(deps, ack, body, view)

    app.event("app_mention")(on_message)
    app.event("message")(on_message)
    app.event("app_home_opened")(on_home_opened)
    app.command("/memory")(on_memory_command)
    app.action(MEMORY_ACTIONS)(on_memory_action)
    app.view(FORGET_QUERY_VIEW)(on_forget_query_view)
    app.view(FORGET_CONFIRM_VIEW)(on_forget_confirm_view)
