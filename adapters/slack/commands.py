"""The ``/memory`` slash command and the buttons it shows. Every answer is ephemeral (only the caller sees it).

``show``, ``search <query>``, ``forget <query>``, ``reset``, ``export``, ``proactive on|off [quiet-hours]
[timezone]``; ``admin show|reset @user`` for workspace
admins and the ids in ``MEMBOT_ADMIN_IDS``. ``forget`` and ``reset`` only answer with what would happen and a
confirm button; the erasing happens when the button is pressed (:func:`handle_action`). Permission is decided by
``bot.authz.Authorizer`` alone; this module only gathers the facts it needs (is the caller a workspace admin?).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.activity import InvalidProactiveSetting
from bot.admin import UnknownAgent
from bot.authz import Action, Actor, Forbidden
from bot.events import AgentKey, InvalidAgentKey, Scope

from .blocks import (
    CANCEL_ACTION,
    FORGET_ACTION,
    HOME_FORGET_ACTION,
    RESET_ACTION,
    fingerprint,
    forget_prompt_blocks,
    hits_blocks,
    memory_blocks,
    memory_text,
    reset_prompt_blocks,
)
from .deps import SlackDeps
from .home import open_forget_modal, publish_home
from .mrkdwn import escape

log = logging.getLogger(__name__)

Respond = Callable[..., Awaitable[Any]]

USAGE = (
    "*`/memory`* shows and manages what I remember about you (only you see these answers):\n"
    "• `/memory show`: your core memory and how much I remember\n"
    "• `/memory search <words>`: search what I remember\n"
    "• `/memory forget <words>`: forget matching memories (asks first)\n"
    "• `/memory reset`: forget everything about you (asks first)\n"
    "• `/memory export`: everything I remember, as a JSON file in our DM\n"
    "• `/memory proactive on|off [quiet-hours] [timezone]`: let me message you between conversations, "
    "e.g. `/memory proactive on 22-08 Europe/Berlin`\n"
    "Workspace admins: `/memory admin show @user`, `/memory admin reset @user`"
)
NO_MEMORY = "I don't remember anything about you yet."
PROACTIVE_USAGE = (
    "Usage: `/memory proactive on|off [quiet-hours] [timezone]`, e.g. `/memory proactive on 22-08 Europe/Berlin`."
)
PROACTIVE_UNAVAILABLE = "Proactive messages are not available here."
MAX_QUERY = 300
_USER_REF = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")


async def ephemeral(respond: Respond, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
    await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)


async def actor_for(deps: SlackDeps, team: str, user: str, target: AgentKey | None) -> Actor:
    """The caller as the Authorizer sees them; workspace admin rights are asked only when they matter."""
    actor = Actor("slack", user, team)
    own = target is not None and target.platform == "slack" and target.user == user
    if own or deps.services.authz.is_bot_admin(actor):
        return actor
    return Actor("slack", user, team, is_platform_admin=await deps.directory.is_workspace_admin(user))


async def handle_command(deps: SlackDeps, command: Mapping[str, Any], respond: Respond) -> None:
    """Run one ``/memory`` command (after it was acknowledged)."""
    team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
    sub, _, rest = str(command.get("text") or "").strip().partition(" ")
    sub, rest = sub.lower(), rest.strip()
    try:
        own = AgentKey("slack", team, user)
        if sub in ("", "help"):
            await ephemeral(respond, USAGE)
        elif sub == "show":
            await _show(deps, respond, await actor_for(deps, team, user, own), own, "What I remember about you")
        elif sub == "search":
            await _search(deps, respond, team, user, rest, _is_dm(command))
        elif sub == "forget":
            await _forget_prompt(deps, respond, team, user, rest)
        elif sub == "reset":
            deps.services.authz.check(Actor("slack", user, team), Action.RESET, own)
            await deps.services.admin.show(own)  # UnknownAgent when there is nothing to reset
            await ephemeral(respond, "Reset your memory? Press the button to confirm.", reset_prompt_blocks(own, "you"))
        elif sub == "export":
            await _export(deps, respond, team, user)
        elif sub == "proactive":
            await _proactive(deps, respond, team, user, rest)
        elif sub == "admin":
            await _admin(deps, respond, team, user, rest)
        else:
            await ephemeral(respond, f"I don't know `{escape(sub)}`.\n{USAGE}")
    except Forbidden as exc:
        await ephemeral(respond, str(exc))
    except UnknownAgent:
        await ephemeral(respond, NO_MEMORY)
    except InvalidAgentKey:
        await ephemeral(respond, "I can't tell who that is.")


def _is_dm(command: Mapping[str, Any]) -> bool:
    return command.get("channel_name") == "directmessage" or str(command.get("channel_id") or "").startswith("D")


async def _show(deps: SlackDeps, respond: Respond, actor: Actor, target: AgentKey, title: str) -> None:
    deps.services.authz.check(actor, Action.SHOW, target)
    view = await deps.services.admin.show(target)
    await ephemeral(respond, memory_text(view), memory_blocks(view, title))


async def _search(deps: SlackDeps, respond: Respond, team: str, user: str, query: str, in_dm: bool) -> None:
    if not query:
        await ephemeral(respond, "What should I look for? Try `/memory search <words>`.")
        return
    agent = AgentKey("slack", team, user)
    deps.services.authz.check(Actor("slack", user, team), Action.SEARCH, agent)
    # Memories from DMs are private: searched from a channel, only what was said in public is shown.
    scope = Scope.PRIVATE if in_dm else Scope.PUBLIC
    note = "" if in_dm else " (from this channel I search only what was said in public; ask me in a DM for the rest)"
    hits = await deps.services.admin.search(agent, query[:MAX_QUERY], scope)
    await ephemeral(respond, f"{len(hits)} match(es) for {query}", hits_blocks(query, hits, note))


async def _forget_prompt(deps: SlackDeps, respond: Respond, team: str, user: str, query: str) -> None:
    if not query:
        await ephemeral(respond, "What should I forget? Try `/memory forget <words>`.")
        return
    if len(query) > MAX_QUERY:
        await ephemeral(respond, f"Please keep it under {MAX_QUERY} characters.")
        return
    agent = AgentKey("slack", team, user)
    deps.services.authz.check(Actor("slack", user, team), Action.FORGET, agent)
    candidates = await deps.services.admin.forget_candidates(agent, query)
    if not candidates:
        await ephemeral(respond, f"Nothing in my memory matches *{escape(query)}*.")
        return
    await ephemeral(respond, f"Forget {len(candidates)} item(s)?", forget_prompt_blocks(agent, query, candidates))


async def _export(deps: SlackDeps, respond: Respond, team: str, user: str) -> None:
    agent = AgentKey("slack", team, user)
    deps.services.authz.check(Actor("slack", user, team), Action.EXPORT, agent)
    document = await deps.services.admin.export(agent)
    try:
        channel = (await deps.client.conversations_open(users=user))["channel"]["id"]
        await deps.client.files_upload_v2(
            channel=channel,
            filename=f"membot-export-{team}-{user}.json",
            title="Everything membot remembers about you",
            content=json.dumps(document, ensure_ascii=False, indent=2),
            initial_comment="Here is everything I remember about you, as JSON.",
        )
    except SlackApiError as exc:
        log.warning("export upload failed", extra={"error": exc.response.get("error")})
        await ephemeral(respond, f"I couldn't upload your export (Slack said: {exc.response.get('error')}).")
        return
    await ephemeral(respond, "I sent everything I remember about you to our direct messages, as a JSON file.")


async def _proactive(deps: SlackDeps, respond: Respond, team: str, user: str, rest: str) -> None:
    words = rest.split()
    if not words or words[0].lower() not in ("on", "off") or len(words) > 3:
        await ephemeral(respond, PROACTIVE_USAGE)
        return
    agent = AgentKey("slack", team, user)
    deps.services.authz.check(Actor("slack", user, team), Action.PROACTIVE, agent)
    control = deps.services.proactive
    if control is None:
        await ephemeral(respond, PROACTIVE_UNAVAILABLE)
        return
    quiet_hours = words[1] if len(words) > 1 else None
    timezone = words[2] if len(words) > 2 else None
    try:
        policy = await control.set(agent, words[0].lower() == "on", quiet_hours=quiet_hours, timezone=timezone)
    except InvalidProactiveSetting as exc:
        await ephemeral(respond, f"Sorry, {escape(str(exc))}.")
        return
    await ephemeral(respond, f"Proactive messages for you: {escape(policy.describe())}.")


async def _admin(deps: SlackDeps, respond: Respond, team: str, user: str, rest: str) -> None:
    verb, _, who = rest.partition(" ")
    match = _USER_REF.match(who.strip())
    if verb.lower() not in ("show", "reset") or not match:
        await ephemeral(respond, "Usage: `/memory admin show @user` or `/memory admin reset @user`.")
        return
    target_user = match.group(1) or match.group(2)
    target = AgentKey("slack", team, target_user)
    actor = await actor_for(deps, team, user, target)
    if verb.lower() == "show":
        await _show(deps, respond, actor, target, "What I remember about this user")
        return
    deps.services.authz.check(actor, Action.RESET, target)
    await deps.services.admin.show(target)
    whose = f"<@{target_user}>"
    await ephemeral(respond, f"Reset the memory of {whose}?", reset_prompt_blocks(target, whose))


async def handle_action(deps: SlackDeps, body: Mapping[str, Any], respond: Respond) -> None:
    """A button from a ``/memory`` answer or the App Home was pressed (and its confirm dialog accepted)."""
    action = (body.get("actions") or [{}])[0]
    action_id = str(action.get("action_id") or "")
    user = str((body.get("user") or {}).get("id") or "")
    team = str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")
    from_home = (body.get("container") or {}).get("type") == "view"
    if action_id == CANCEL_ACTION:
        await respond(delete_original=True)
        return
    if action_id == HOME_FORGET_ACTION:
        await open_forget_modal(deps, str(body.get("trigger_id") or ""))
        return
    try:
        value = json.loads(str(action.get("value") or "{}"))
        target = AgentKey.parse(str(value.get("agent") or ""))
        actor = await actor_for(deps, team, user, target)
        if action_id == RESET_ACTION:
            deps.services.authz.check(actor, Action.RESET, target)
            counts = await deps.services.admin.reset(target)
            text = f"Done: I erased {sum(counts.values()):,} stored item(s). I remember nothing of that now."
        elif action_id == FORGET_ACTION:
            text = await _forget(deps, respond, actor, target, str(value.get("q") or ""), str(value.get("fp") or ""))
            if not text:
                return
        else:
            log.info("unknown memory action", extra={"action": action_id})
            return
    except Forbidden as exc:
        text = str(exc)
    except UnknownAgent:
        text = "There is nothing stored to erase."
    except (InvalidAgentKey, ValueError):
        text = "That button no longer works; please run the command again."
    if from_home:
        await publish_home(deps, team, user)
    else:
        await respond(text=text, replace_original=True, response_type="ephemeral")


async def _forget(deps: SlackDeps, respond: Respond, actor: Actor, target: AgentKey, query: str, fp: str) -> str:
    """Forget what the prompt listed; if memory changed since, show the new list instead (returns "")."""
    deps.services.authz.check(actor, Action.FORGET, target)
    candidates = await deps.services.admin.forget_candidates(target, query)
    if not candidates:
        return f"Nothing matches “{query}” any more, so there was nothing to forget."
    if fingerprint(candidates) != fp:
        note = "My memory changed since you asked. "
        await respond(
            text="Forget these?",
            blocks=forget_prompt_blocks(target, query, candidates, note),
            replace_original=True,
            response_type="ephemeral",
        )
        return ""
    removed = await deps.services.admin.forget(target, candidates)
    return f"Done: I forgot {removed} item(s) matching “{query}”."
