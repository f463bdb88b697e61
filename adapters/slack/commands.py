"""The ``/memory`` slash command and the buttons it shows. Every answer is ephemeral (only the caller sees it).

``show``, ``search <query>``, ``forget <query>``, ``reset``, ``export``, ``proactive on|off [quiet-hours]
[timezone]``, ``reminders [cancel <id>]``, ``history [N]``, ``rollback <version>``, ``private <words>``,
``public <words>``; ``admin show|reset|history|rollback @user`` and ``channel off|mention|always|listen`` for
workspace admins and the ids in ``MEMBOT_ADMIN_IDS``. ``forget`` and ``reset`` (the full erase) only answer with
what would happen and a confirm button; the erasing happens when the button is pressed (:func:`handle_action`).
Permission and what may be shown (``view_scope``: everything only in a DM with membot, to the user or a bot admin)
are decided by ``bot.admin.authz.Authorizer`` alone; this module only gathers the facts it needs (is the caller a
workspace admin? is this a DM?).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.admin.authz import Action, Actor, Forbidden
from bot.admin.memory import UnknownAgent
from bot.core.events import AgentKey, InvalidAgentKey, Scope
from bot.core.memory_types import MemoryEditError, VersionNotKept
from bot.runtime.channels import MODE_EXPLAINED, ChannelMode

from .blocks import (
    CANCEL_ACTION,
    FORGET_ACTION,
    HOME_FORGET_ACTION,
    REMINDER_CANCEL_ACTION,
    RESET_ACTION,
    fingerprint,
    forget_prompt_blocks,
    history_blocks,
    hits_blocks,
    marked_text,
    memory_blocks,
    memory_text,
    reminders_blocks,
    reset_prompt_blocks,
    rollback_blocks,
)
from .deps import SlackDeps
from .home import open_forget_modal, publish_home
from .mrkdwn import escape
from .preferences import proactive_command, timezone_command

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
    "• `/memory timezone [zone]`: your time zone for reminders and quiet hours, or set it (e.g. `Europe/Berlin`)\n"
    "• `/memory reminders`: the reminders you asked me for, with buttons to cancel them "
    "(or `/memory reminders cancel <id>`)\n"
    "• `/memory history [N]`: what changed in your memory, and why\n"
    "• `/memory rollback <version>`: put your core memory back as it was at a version from the history\n"
    "• `/memory private <words>` / `/memory public <words>`: keep core memory lines out of channels, or not\n"
    "Workspace admins: `/memory admin show|reset|history @user`, `/memory admin rollback @user <version>`, "
    "`/memory channel off|mention|always|listen` (in the channel)"
)
CHANNEL_USAGE = (
    "Usage, in a channel: `/memory channel off` (stay out), `mention` (answer when mentioned, the default), "
    "`always` (answer every message) or `listen` (remember every message, answer when mentioned)."
)
ADMIN_USAGE = (
    "Usage: `/memory admin show @user`, `/memory admin reset @user`, `/memory admin history @user [N]` or "
    "`/memory admin rollback @user <version>`."
)
HISTORY_DEFAULT = 10
HISTORY_MAX = 25
NO_MEMORY = "I don't remember anything about you yet."
PUBLIC_NOTE = " (from a channel I show only what was said in public; ask me in a DM for the rest)"
MAX_QUERY = 300
_USER_REF = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")


async def ephemeral(respond: Respond, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
    await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)


async def actor_for(
    deps: SlackDeps, team: str, user: str, target: AgentKey | None, *, in_private: bool = False
) -> Actor:
    """The caller as the Authorizer sees them; workspace admin rights are asked only when they matter."""
    actor = Actor("slack", user, team, in_private=in_private)
    if (target is not None and actor.owns(target)) or deps.services.authz.is_bot_admin(actor):
        return actor
    is_admin = await deps.directory.is_workspace_admin(user)
    return Actor("slack", user, team, is_platform_admin=is_admin, in_private=in_private)


async def handle_command(deps: SlackDeps, command: Mapping[str, Any], respond: Respond) -> None:
    """Run one ``/memory`` command (after it was acknowledged)."""
    team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
    sub, _, rest = str(command.get("text") or "").strip().partition(" ")
    sub, rest = sub.lower(), rest.strip()
    in_dm = _is_dm(command)
    try:
        own = AgentKey("slack", team, user)
        me = Actor("slack", user, team, in_private=in_dm)
        if sub in ("", "help"):
            await ephemeral(respond, USAGE)
        elif sub == "show":
            await _show(deps, respond, me, own, "What I remember about you")
        elif sub == "search":
            await _search(deps, respond, me, rest)
        elif sub == "forget":
            await _forget_prompt(deps, respond, me, rest)
        elif sub == "reset":
            deps.services.authz.check(me, Action.RESET, own)
            await deps.services.admin.require_any(own)  # UnknownAgent when there is nothing to reset
            await ephemeral(respond, "Reset your memory? Press the button to confirm.", reset_prompt_blocks(own, "you"))
        elif sub == "export":
            await _export(deps, respond, team, user)
        elif sub in ("proactive", "timezone"):
            await (proactive_command if sub == "proactive" else timezone_command)(deps, respond, team, user, rest)
        elif sub == "reminders":
            await _reminders(deps, respond, me, rest)
        elif sub == "history":
            await _history(deps, respond, me, own, rest, "your")
        elif sub == "rollback":
            await _rollback(deps, respond, me, own, rest)
        elif sub in ("private", "public"):
            await _mark(deps, respond, me, rest, private=sub == "private")
        elif sub == "admin":
            await _admin(deps, respond, team, user, rest, in_dm)
        elif sub == "channel":
            await _channel(deps, respond, team, user, rest, command)
        else:
            await ephemeral(respond, f"I don't know `{escape(sub)}`.\n{USAGE}")
    except (Forbidden, VersionNotKept) as exc:
        await ephemeral(respond, escape(str(exc)))
    except MemoryEditError as exc:
        await ephemeral(respond, f"Sorry, I couldn't change that: {escape(str(exc))}")
    except UnknownAgent:
        await ephemeral(respond, NO_MEMORY)
    except InvalidAgentKey:
        await ephemeral(respond, "I can't tell who that is.")


def _is_dm(command: Mapping[str, Any]) -> bool:
    return command.get("channel_name") == "directmessage" or str(command.get("channel_id") or "").startswith("D")


async def _show(deps: SlackDeps, respond: Respond, actor: Actor, target: AgentKey, title: str) -> None:
    deps.services.authz.check(actor, Action.SHOW, target)
    view = await deps.services.admin.show(target, deps.services.authz.view_scope(actor, target))
    await ephemeral(respond, memory_text(view), memory_blocks(view, title))


def _own(actor: Actor) -> AgentKey:
    return AgentKey("slack", actor.workspace or "dm", actor.user_id)


async def _search(deps: SlackDeps, respond: Respond, actor: Actor, query: str) -> None:
    if not query:
        await ephemeral(respond, "What should I look for? Try `/memory search <words>`.")
        return
    agent = _own(actor)
    deps.services.authz.check(actor, Action.SEARCH, agent)
    # Memories from DMs are private: searched from a channel, only what was said in public is shown.
    scope = deps.services.authz.view_scope(actor, agent)
    note = "" if scope is Scope.PRIVATE else PUBLIC_NOTE
    hits = await deps.services.admin.search(agent, query[:MAX_QUERY], scope)
    await ephemeral(respond, f"{len(hits)} match(es) for {query}", hits_blocks(query, hits, note))


async def _forget_prompt(deps: SlackDeps, respond: Respond, actor: Actor, query: str) -> None:
    if not query:
        await ephemeral(respond, "What should I forget? Try `/memory forget <words>`.")
        return
    if len(query) > MAX_QUERY:
        await ephemeral(respond, f"Please keep it under {MAX_QUERY} characters.")
        return
    agent = _own(actor)
    deps.services.authz.check(actor, Action.FORGET, agent)
    scope = deps.services.authz.view_scope(actor, agent)
    candidates = await deps.services.admin.forget_candidates(agent, query, scope)
    if not candidates:
        note = "" if scope is Scope.PRIVATE else PUBLIC_NOTE
        await ephemeral(respond, f"Nothing in my memory matches *{escape(query)}*.{note}")
        return
    blocks = forget_prompt_blocks(agent, query, candidates, scope=scope)
    await ephemeral(respond, f"Forget {len(candidates)} item(s)?", blocks)


async def _history(deps: SlackDeps, respond: Respond, actor: Actor, target: AgentKey, rest: str, whose: str) -> None:
    limit = int(rest) if rest.isdigit() else HISTORY_DEFAULT
    deps.services.authz.check(actor, Action.HISTORY, target)
    scope = deps.services.authz.view_scope(actor, target)
    items = await deps.services.repair.history(target, limit=max(1, min(limit, HISTORY_MAX)), scope=scope)
    await ephemeral(respond, f"{len(items)} change(s) to {whose} memory", history_blocks(items, whose))


async def _rollback(deps: SlackDeps, respond: Respond, actor: Actor, target: AgentKey, rest: str) -> None:
    version = rest.removeprefix("v")
    if not version.isdigit() or int(version) < 1:
        await ephemeral(
            respond, "Which version? Try `/memory rollback <version>` with a number from `/memory history`."
        )
        return
    deps.services.authz.check(actor, Action.ROLLBACK, target)
    scope = deps.services.authz.view_scope(actor, target)
    result = await deps.services.repair.rollback(target, int(version), cause=actor.cause(target), scope=scope)
    await ephemeral(respond, f"Core memory is back to version {result.to}.", rollback_blocks(result))


async def _mark(deps: SlackDeps, respond: Respond, actor: Actor, query: str, *, private: bool) -> None:
    if not query:
        await ephemeral(respond, "Which lines? Try `/memory private <words>` or `/memory public <words>`.")
        return
    agent = _own(actor)
    deps.services.authz.check(actor, Action.MARK_PRIVATE, agent)
    scope = deps.services.authz.view_scope(actor, agent)
    result = await deps.services.repair.mark(agent, query[:MAX_QUERY], private, cause=actor.cause(agent), scope=scope)
    await ephemeral(respond, marked_text(result, query))


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


async def _channel(
    deps: SlackDeps, respond: Respond, team: str, user: str, rest: str, command: Mapping[str, Any]
) -> None:
    """``/memory channel off|mention|always|listen``: how membot treats this channel (workspace admins)."""
    if _is_dm(command):
        await ephemeral(respond, "Use `/memory channel` in the channel it is about.")
        return
    try:
        mode = ChannelMode.parse(rest or "?")
    except ValueError:
        await ephemeral(respond, CHANNEL_USAGE)
        return
    actor = await actor_for(deps, team, user, None)
    deps.services.authz.check(actor, Action.CHANNEL_MODE)
    await deps.services.channel_modes.set("slack", str(command.get("channel_id") or ""), mode.value)
    await ephemeral(respond, MODE_EXPLAINED[mode])


async def _reminders(deps: SlackDeps, respond: Respond, actor: Actor, rest: str) -> None:
    """List the caller's reminders (from a channel, only those set in public), or cancel one by id."""
    agent = _own(actor)
    deps.services.authz.check(actor, Action.REMINDERS, agent)
    scope = deps.services.authz.view_scope(actor, agent)
    verb, _, wanted = rest.partition(" ")
    if verb.lower() == "cancel":
        await ephemeral(respond, await _cancel_reminder(deps, agent, wanted.strip(), scope))
        return
    if rest:
        await ephemeral(respond, "Try `/memory reminders` or `/memory reminders cancel <id>`.")
        return
    reminders = [r for r in await deps.services.admin.reminders(agent) if scope is Scope.PRIVATE or r.scope is scope]
    note = "" if scope is Scope.PRIVATE else PUBLIC_NOTE
    await ephemeral(respond, f"{len(reminders)} pending reminder(s)", reminders_blocks(agent, reminders, note))


async def _cancel_reminder(deps: SlackDeps, agent: AgentKey, reminder_id: str, scope: Scope) -> str:
    visible = {r.id for r in await deps.services.admin.reminders(agent) if scope is Scope.PRIVATE or r.scope is scope}
    cancelled = await deps.services.admin.cancel_reminder(agent, reminder_id) if reminder_id in visible else None
    if cancelled is None:
        return f"You have no pending reminder `{escape(reminder_id)}`; `/memory reminders` lists them."
    return f"Cancelled your reminder for {escape(cancelled.local_due())}: {escape(cancelled.text)}"


async def _admin(deps: SlackDeps, respond: Respond, team: str, user: str, rest: str, in_dm: bool) -> None:
    verb, _, args = rest.partition(" ")
    who, _, extra = args.strip().partition(" ")
    verb, match = verb.lower(), _USER_REF.match(who.strip())
    if verb not in ("show", "reset", "history", "rollback") or not match:
        await ephemeral(respond, ADMIN_USAGE)
        return
    target_user = match.group(1) or match.group(2)
    target = AgentKey("slack", team, target_user)
    actor = await actor_for(deps, team, user, target, in_private=in_dm)
    whose = f"<@{target_user}>"
    if verb == "show":
        await _show(deps, respond, actor, target, "What I remember about this user")
    elif verb == "history":
        await _history(deps, respond, actor, target, extra.strip(), f"{whose}'s")
    elif verb == "rollback":
        await _rollback(deps, respond, actor, target, extra.strip())
    else:
        deps.services.authz.check(actor, Action.RESET, target)
        await deps.services.admin.require_any(target)
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
            counts = await deps.services.admin.erase(target, cause=actor.cause(target))
            text = f"Done: I erased {sum(counts.values()):,} stored item(s). I remember nothing of that now."
        elif action_id == REMINDER_CANCEL_ACTION:
            deps.services.authz.check(actor, Action.REMINDERS, target)
            text = await _cancel_reminder(deps, target, str(value.get("id") or ""), Scope.PRIVATE)
        elif action_id == FORGET_ACTION:
            query, fp = str(value.get("q") or ""), str(value.get("fp") or "")
            scope = Scope(str(value.get("s") or Scope.PRIVATE.value))
            text = await _forget(deps, respond, actor, target, query, fp, scope)
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


async def _forget(
    deps: SlackDeps, respond: Respond, actor: Actor, target: AgentKey, query: str, fp: str, scope: Scope
) -> str:
    """Forget what the prompt listed; if memory changed since, show the new list instead (returns "")."""
    deps.services.authz.check(actor, Action.FORGET, target)
    candidates = await deps.services.admin.forget_candidates(target, query, scope)
    if not candidates:
        return f"Nothing matches “{query}” any more, so there was nothing to forget."
    if fingerprint(candidates) != fp:
        note = "My memory changed since you asked. "
        await respond(
            text="Forget these?",
            blocks=forget_prompt_blocks(target, query, candidates, note, scope),
            replace_original=True,
            response_type="ephemeral",
        )
        return ""
    removed = await deps.services.admin.forget(target, candidates, cause=actor.cause(target))
    return f"Done: I forgot {removed} item(s) matching “{query}”."
