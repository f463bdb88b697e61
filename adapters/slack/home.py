"""The App Home tab: the user's own core memory, counts of recall and archival entries, forget and reset buttons.

"Forget something…" opens a modal asking what to forget; submitting it shows the matching memories in the same
modal, and submitting that forgets them. "Reset my memory" carries a confirm dialog and is handled with the
``/memory`` buttons in ``commands.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.admin.authz import Action, Actor, Forbidden
from bot.admin.memory import ForgetCandidate, MemoryView, UnknownAgent
from bot.core.events import AgentKey, InvalidAgentKey

from .blocks import (
    HOME_FORGET_ACTION,
    RESET_ACTION,
    Block,
    button,
    candidate_lines,
    confirm_dialog,
    context,
    fingerprint,
    header,
    memory_blocks,
    section,
)
from .deps import SlackDeps
from .mrkdwn import escape

log = logging.getLogger(__name__)

FORGET_QUERY_VIEW = "memory_forget_query"
FORGET_CONFIRM_VIEW = "memory_forget_modal"
Ack = Callable[..., Awaitable[Any]]


def home_view(view: MemoryView | None, agent: AgentKey) -> dict[str, Any]:
    """The Home tab for one user."""
    if view is None:
        blocks: list[Block] = [
            header("What membot remembers about you"),
            section(
                "I don't remember anything about you yet. Send me a direct message and we'll get to know each other."
            ),
        ]
        return {"type": "home", "blocks": blocks}
    blocks = memory_blocks(view, "What membot remembers about you")
    dialog = confirm_dialog(
        "Reset memory?", "This erases everything I remember about you. It cannot be undone.", "Reset"
    )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                button("Forget something…", HOME_FORGET_ACTION),
                button(
                    "Reset my memory", RESET_ACTION, json.dumps({"agent": str(agent)}), style="danger", confirm=dialog
                ),
            ],
        }
    )
    blocks.append(context("Type `/memory` anywhere for more: search, export, and help."))
    return {"type": "home", "blocks": blocks}


async def publish_home(deps: SlackDeps, team: str, user: str) -> None:
    """Publish the user's Home tab (views.publish)."""
    agent = AgentKey("slack", team, user)
    try:
        deps.services.authz.check(Actor("slack", user, team), Action.SHOW, agent)
        view: MemoryView | None = await deps.services.admin.show(agent)
    except UnknownAgent:
        view = None
    try:
        await deps.client.views_publish(user_id=user, view=home_view(view, agent))
    except SlackApiError as exc:
        log.warning("views.publish failed", extra={"error": exc.response.get("error")})


def forget_query_modal() -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": FORGET_QUERY_VIEW,
        "title": {"type": "plain_text", "text": "Forget something"},
        "submit": {"type": "plain_text", "text": "Find"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "query",
                "label": {"type": "plain_text", "text": "What should I forget?"},
                "element": {"type": "plain_text_input", "action_id": "q", "max_length": 300},
            }
        ],
    }


def forget_confirm_modal(
    agent: AgentKey, query: str, candidates: Sequence[ForgetCandidate], note: str = ""
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": FORGET_CONFIRM_VIEW,
        "private_metadata": json.dumps(
            {"agent": str(agent), "q": query, "fp": fingerprint(candidates)}, ensure_ascii=False
        ),
        "title": {"type": "plain_text", "text": "Forget these?"},
        "submit": {"type": "plain_text", "text": f"Forget {len(candidates)}"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [section(f"{note}These match *{escape(query)}*:\n{candidate_lines(candidates)}")],
    }


async def open_forget_modal(deps: SlackDeps, trigger_id: str) -> None:
    try:
        await deps.client.views_open(trigger_id=trigger_id, view=forget_query_modal())
    except SlackApiError as exc:
        log.warning("views.open failed", extra={"error": exc.response.get("error")})


def _who(body: Mapping[str, Any]) -> tuple[str, str]:
    user = body.get("user") or {}
    return str((body.get("team") or {}).get("id") or user.get("team_id") or ""), str(user.get("id") or "")


async def on_forget_query(deps: SlackDeps, ack: Ack, body: Mapping[str, Any], view: Mapping[str, Any]) -> None:
    """The query modal was submitted: show what would be forgotten (answered in the ack, within 3 seconds)."""
    team, user = _who(body)
    query = str(view["state"]["values"]["query"]["q"].get("value") or "").strip()
    agent = AgentKey("slack", team, user)
    try:
        deps.services.authz.check(Actor("slack", user, team), Action.FORGET, agent)
        candidates = await deps.services.admin.forget_candidates(agent, query)
    except (UnknownAgent, Forbidden):
        candidates = []
    if not candidates:
        await ack(response_action="errors", errors={"query": "Nothing in my memory matches that."})
        return
    await ack(response_action="update", view=forget_confirm_modal(agent, query, candidates))


async def on_forget_confirm(deps: SlackDeps, ack: Ack, body: Mapping[str, Any], view: Mapping[str, Any]) -> None:
    """The confirm modal was submitted: forget exactly what it listed, then refresh the Home tab."""
    team, user = _who(body)
    try:
        meta = json.loads(str(view.get("private_metadata") or "{}"))
        agent = AgentKey.parse(str(meta.get("agent")))
        query = str(meta.get("q") or "")
        deps.services.authz.check(Actor("slack", user, team), Action.FORGET, agent)
        candidates = await deps.services.admin.forget_candidates(agent, query)
    except (ValueError, InvalidAgentKey, Forbidden, UnknownAgent):
        await ack()
        return
    if candidates and fingerprint(candidates) != meta.get("fp"):
        note = "My memory changed since you asked; here is the current list.\n"
        await ack(response_action="update", view=forget_confirm_modal(agent, query, candidates, note))
        return
    await ack()

    cause = Actor("slack", user, team).cause(agent)

    async def forget_and_refresh() -> None:
        if candidates:
            await deps.services.admin.forget(agent, candidates, cause=cause)
        await publish_home(deps, team, user)

    deps.tasks.spawn(forget_and_refresh(), "home-forget")
