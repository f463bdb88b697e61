"""Slash commands: ``/memory show|search|forget|reset|export|proactive|reminders|history|rollback|private|public``
for everyone, ``/membot channel|user`` for admins.

Every command decides permission through ``bot.admin.authz`` first; a refusal or "nothing stored" is answered
politely and only to the caller (ephemeral). Erasing commands show what they would erase and wait for a button.
What a command shows follows ``Authorizer.view_scope``: in a server channel, and to admins, private core lines
and the summary are left out. Every write is audited with the caller as its cause.
"""

from __future__ import annotations

import io
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord
from discord import app_commands

from adapters.discord.confirm import ConfirmView
from adapters.discord.normalize import PLATFORM, agent_for
from adapters.discord.render import (
    render_cancelled,
    render_candidates,
    render_history,
    render_hits,
    render_marked,
    render_memory,
    render_reminders,
    render_rollback,
)
from adapters.discord.split import split_message
from adapters.keys import person_of
from bot.admin.authz import Action, Actor, Forbidden
from bot.admin.memory import UnknownAgent
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import MemoryEditError, VersionNotKept
from bot.runtime.channels import MODE_EXPLAINED, ChannelMode
from bot.runtime.proactive import InvalidProactiveSetting
from bot.services import Services

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
NOTHING_STORED = "I don't remember anything about you here yet."
NOTHING_STORED_MEMBER = "I don't remember anything about them in this server."
EDIT_FAILED = "Sorry, I couldn't change that: {reason}"
HISTORY_DEFAULT = 10
HISTORY_MAX = 25
COMMAND_FAILED = "Sorry, something went wrong on my side. Please try again in a moment."
SERVER_ONLY = "This command works in a server channel."
DM_CLOSED = (
    "I couldn't send you a DM. Allow direct messages from this server's members (Privacy Settings) and try again."
)


def actor_of(interaction: Interaction) -> Actor:
    """Who runs a command; a Manage Server permission in the guild makes them a platform admin."""
    guild_id = interaction.guild_id
    return Actor(
        PLATFORM,
        str(interaction.user.id),
        str(guild_id) if guild_id else None,
        is_platform_admin=bool(guild_id) and interaction.permissions.manage_guild,
        in_private=not guild_id,
    )


async def answer(interaction: Interaction, text: str, *, view: ConfirmView | None = None) -> None:
    """Answer a deferred command privately, split into messages; ``view`` goes on the last one."""
    chunks = split_message(text) or ["(nothing to show)"]
    for index, chunk in enumerate(chunks):
        if view is not None and index == len(chunks) - 1:
            view.message = await interaction.followup.send(chunk, ephemeral=True, view=view, wait=True)
        else:
            await interaction.followup.send(chunk, ephemeral=True)


class MembotTree(app_commands.CommandTree[discord.Client]):
    """The command tree: each interaction handled once, every error answered privately."""

    def __init__(self, client: discord.Client, services: Services) -> None:
        super().__init__(client)
        self._services = services
        self.live_views: weakref.WeakSet[ConfirmView] = weakref.WeakSet()
        self.add_command(MemoryCommands(services, self.live_views))
        self.add_command(AdminCommands(services, self.live_views))

    async def interaction_check(self, interaction: Interaction, /) -> bool:
        """Skip an interaction delivered twice (gateway resumes); the first delivery was answered."""
        person = person_of(agent_for(interaction.guild_id, interaction.user.id))
        return await self._services.throttle.first_time(person, f"interaction:{interaction.id}")

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError, /) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, Forbidden | VersionNotKept):
            text = str(cause)
        elif isinstance(cause, MemoryEditError):
            text = EDIT_FAILED.format(reason=cause)
        elif isinstance(cause, UnknownAgent):
            text = NOTHING_STORED
        elif isinstance(cause, app_commands.NoPrivateMessage):
            text = SERVER_ONLY
        else:
            log.error(
                "slash command failed", exc_info=cause, extra={"command": getattr(interaction.command, "name", None)}
            )
            text = COMMAND_FAILED
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not report a slash command error to the user")

    def stop_views(self) -> None:
        """Stop waiting for confirmation buttons (shutdown)."""
        for view in list(self.live_views):
            view.stop()


class _Commands(app_commands.Group):
    def __init__(self, services: Services, live_views: weakref.WeakSet[ConfirmView]) -> None:
        super().__init__()
        self._services = services
        self._live_views = live_views

    async def _confirm(
        self, interaction: Interaction, text: str, label: str, action: Callable[[], Awaitable[str]]
    ) -> None:
        view = ConfirmView(interaction.user.id, action, confirm_label=label)
        self._live_views.add(view)
        await answer(interaction, text, view=view)

    async def _reset_prompt(self, interaction: Interaction, agent: AgentKey, subject: str) -> None:
        """Ask before erasing every store of ``agent`` (the full erase); ``subject`` is "you" or the member's name."""
        admin = self._services.admin
        await admin.require_any(agent)
        cause = actor_of(interaction).cause(agent)

        async def reset() -> str:
            erased = await admin.erase(agent, cause=cause)
            return f"Done: erased {sum(erased.values())} stored items. I remember nothing about {subject} here now."

        try:
            view = await admin.show(agent)
            held = f"{view.recall_count} messages, {view.archival_count} archival notes, the core memory and"
        except UnknownAgent:  # reset before: only the core versions and the log of changes are left
            held = "what is left:"
        text = (
            f"**Erase everything I remember about {subject} here?** That is {held} the log of changes. "
            "This cannot be undone."
        )
        await self._confirm(interaction, text, "Erase everything", reset)

    async def _history(self, interaction: Interaction, agent: AgentKey, limit: int | None, whose: str) -> None:
        actor = actor_of(interaction)
        scope = self._services.authz.view_scope(actor, agent)
        items = await self._services.repair.history(agent, limit=limit or HISTORY_DEFAULT, scope=scope)
        await answer(interaction, render_history(items, whose))

    async def _rollback(self, interaction: Interaction, agent: AgentKey, version: int) -> None:
        actor = actor_of(interaction)
        scope = self._services.authz.view_scope(actor, agent)
        result = await self._services.repair.rollback(agent, version, cause=actor.cause(agent), scope=scope)
        await answer(interaction, render_rollback(result))


class MemoryCommands(_Commands, name="memory", description="See and manage what membot remembers about you"):
    """Everyone's own memory, in the place the command is used (this server, or DMs)."""

    def _own(self, interaction: Interaction, action: Action) -> AgentKey:
        agent = agent_for(interaction.guild_id, interaction.user.id)
        self._services.authz.check(actor_of(interaction), action, agent)
        return agent

    def _scope(self, interaction: Interaction, agent: AgentKey) -> Scope:
        return self._services.authz.view_scope(actor_of(interaction), agent)

    @app_commands.command(name="show", description="Your core memory and how much I remember (only you see it)")
    async def show(self, interaction: Interaction) -> None:
        agent = self._own(interaction, Action.SHOW)
        await interaction.response.defer(ephemeral=True, thinking=True)
        view = await self._services.admin.show(agent, self._scope(interaction, agent))
        await answer(interaction, render_memory(view, "Your"))

    @app_commands.command(name="search", description="Search what I remember about you (only you see it)")
    @app_commands.describe(query="Words or a question to look for")
    async def search(self, interaction: Interaction, query: app_commands.Range[str, 1, 200]) -> None:
        agent = self._own(interaction, Action.SEARCH)
        await interaction.response.defer(ephemeral=True, thinking=True)
        hits = await self._services.admin.search(agent, query, self._scope(interaction, agent))
        await answer(interaction, render_hits(query, hits))

    @app_commands.command(name="forget", description="Erase the memories that match (asks you to confirm)")
    @app_commands.describe(query="Words to look for in what I remember")
    async def forget(self, interaction: Interaction, query: app_commands.Range[str, 1, 200]) -> None:
        agent = self._own(interaction, Action.FORGET)
        await interaction.response.defer(ephemeral=True, thinking=True)
        admin = self._services.admin
        candidates = await admin.forget_candidates(agent, query, self._scope(interaction, agent))
        if not candidates:
            await answer(interaction, render_hits(query, []))
            return
        cause = actor_of(interaction).cause(agent)

        async def forget() -> str:
            removed = await admin.forget(agent, candidates, cause=cause)
            return f"Done: forgot {removed} items."

        await self._confirm(interaction, render_candidates(query, candidates), "Forget them", forget)

    @app_commands.command(name="reset", description="Erase everything I remember about you here (asks to confirm)")
    async def reset(self, interaction: Interaction) -> None:
        agent = self._own(interaction, Action.RESET)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._reset_prompt(interaction, agent, "you")

    @app_commands.command(name="export", description="Everything I remember about you, as a JSON file in your DMs")
    async def export(self, interaction: Interaction) -> None:
        agent = self._own(interaction, Action.EXPORT)
        await interaction.response.defer(ephemeral=True, thinking=True)
        document = await self._services.admin.export(agent)
        data = json.dumps(document, indent=2, ensure_ascii=False).encode()
        filename = f"membot-memory-{str(agent).replace(':', '-')}.json"
        try:
            await interaction.user.send(
                f"Here is everything I remember about you (`{agent}`).",
                file=discord.File(io.BytesIO(data), filename=filename),
            )
        except discord.Forbidden:
            await answer(interaction, DM_CLOSED)
            return
        await answer(interaction, f"I sent your memory export ({len(data):,} bytes) to you in a DM.")

    @app_commands.command(name="proactive", description="Let me message you between conversations, or stop it")
    @app_commands.describe(
        setting="on: I may message you now and then; off: only when you write first",
        quiet_hours="No messages in this local time range, e.g. 22-08, or none",
        timezone="Your time zone, e.g. Europe/Berlin",
    )
    async def proactive(
        self,
        interaction: Interaction,
        setting: Literal["on", "off"],
        quiet_hours: app_commands.Range[str, 1, 20] | None = None,
        timezone: app_commands.Range[str, 1, 64] | None = None,
    ) -> None:
        agent = self._own(interaction, Action.PROACTIVE)
        await interaction.response.defer(ephemeral=True, thinking=True)
        control = self._services.proactive
        try:
            policy = await control.set(agent, setting == "on", quiet_hours=quiet_hours, timezone=timezone)
        except InvalidProactiveSetting as exc:
            await answer(interaction, f"Sorry, {exc}.")
            return
        await answer(interaction, f"Proactive messages for you here: {policy.describe()}.")

    @app_commands.command(name="reminders", description="The reminders you asked me for, or cancel one")
    @app_commands.describe(cancel="The id of a reminder to cancel (from this list)")
    async def reminders(self, interaction: Interaction, cancel: app_commands.Range[str, 1, 40] | None = None) -> None:
        agent = self._own(interaction, Action.REMINDERS)
        await interaction.response.defer(ephemeral=True, thinking=True)
        scope = self._scope(interaction, agent)
        admin = self._services.admin
        visible = [r for r in await admin.reminders(agent) if scope is Scope.PRIVATE or r.scope is scope]
        if cancel is None:
            await answer(interaction, render_reminders(visible, public=scope is Scope.PUBLIC))
            return
        done = await admin.cancel_reminder(agent, cancel) if cancel.strip() in {r.id for r in visible} else None
        if done is None:
            await answer(interaction, render_reminders(visible, public=scope is Scope.PUBLIC, missing=cancel))
            return
        await answer(interaction, render_cancelled(done))

    @app_commands.command(name="history", description="What changed in your memory here, and why (only you see it)")
    @app_commands.describe(limit=f"How many changes to list (default {HISTORY_DEFAULT})")
    async def history(
        self, interaction: Interaction, limit: app_commands.Range[int, 1, HISTORY_MAX] | None = None
    ) -> None:
        agent = self._own(interaction, Action.HISTORY)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._history(interaction, agent, limit, "your")

    @app_commands.command(name="rollback", description="Put your core memory back as it was at a version")
    @app_commands.describe(version="The version number (vN) from /memory history")
    async def rollback(self, interaction: Interaction, version: app_commands.Range[int, 1]) -> None:
        agent = self._own(interaction, Action.ROLLBACK)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._rollback(interaction, agent, version)

    @app_commands.command(name="private", description="Keep core memory lines out of public channels")
    @app_commands.describe(query="Words in the lines to keep private")
    async def private(self, interaction: Interaction, query: app_commands.Range[str, 1, 200]) -> None:
        await self._mark(interaction, query, private=True)

    @app_commands.command(name="public", description="Let private core memory lines be used in channels again")
    @app_commands.describe(query="Words in the private lines")
    async def public(self, interaction: Interaction, query: app_commands.Range[str, 1, 200]) -> None:
        await self._mark(interaction, query, private=False)

    async def _mark(self, interaction: Interaction, query: str, *, private: bool) -> None:
        agent = self._own(interaction, Action.MARK_PRIVATE)
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_of(interaction)
        result = await self._services.repair.mark(
            agent, query, private, cause=actor.cause(agent), scope=self._scope(interaction, agent)
        )
        await answer(interaction, render_marked(result, query))


class AdminCommands(
    _Commands,
    name="membot",
    description="membot settings for server admins",
    guild_only=True,
    default_permissions=discord.Permissions(manage_guild=True),
):
    """Server admins (Manage Server) and membot's configured admins only. Discord hides the group from members
    without Manage Server (``default_member_permissions``; a server can grant it to roles in its settings); the
    authorizer checks every call all the same."""

    channel = app_commands.Group(name="channel", description="How membot answers in this channel")
    user = app_commands.Group(name="user", description="A member's memory in this server")

    async def _set_mode(self, interaction: Interaction, mode: str) -> None:
        self._services.authz.check(actor_of(interaction), Action.CHANNEL_MODE)
        if interaction.channel_id is None:
            raise app_commands.NoPrivateMessage()
        await self._services.channel_modes.set(PLATFORM, str(interaction.channel_id), mode)
        await interaction.response.send_message(MODE_EXPLAINED[ChannelMode.parse(mode)], ephemeral=True)

    def _member_agent(self, interaction: Interaction, member: discord.Member, action: Action) -> AgentKey:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        agent = agent_for(interaction.guild_id, member.id)
        self._services.authz.check(actor_of(interaction), action, agent)
        return agent

    @channel.command(name="always", description="Answer every message in this channel")
    async def channel_always(self, interaction: Interaction) -> None:
        await self._set_mode(interaction, "always")

    @channel.command(name="mention", description="Answer only when mentioned or replied to (the default)")
    async def channel_mention(self, interaction: Interaction) -> None:
        await self._set_mode(interaction, "mention")

    @channel.command(name="listen", description="Read and remember this channel; answer only when mentioned")
    async def channel_listen(self, interaction: Interaction) -> None:
        await self._set_mode(interaction, "listen")

    @channel.command(name="off", description="Stay out of this channel: neither answer nor read it")
    async def channel_off(self, interaction: Interaction) -> None:
        await self._set_mode(interaction, "off")

    @user.command(name="show", description="A member's core memory and counts in this server (only you see it)")
    @app_commands.describe(member="Whose memory to show")
    async def user_show(self, interaction: Interaction, member: discord.Member) -> None:
        agent = self._member_agent(interaction, member, Action.SHOW)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            view = await self._services.admin.show(agent, self._services.authz.view_scope(actor_of(interaction), agent))
        except UnknownAgent:
            await answer(interaction, NOTHING_STORED_MEMBER)
            return
        await answer(interaction, render_memory(view, f"{member.display_name}'s"))

    @user.command(name="reset", description="Erase a member's memory in this server (asks to confirm)")
    @app_commands.describe(member="Whose memory to erase")
    async def user_reset(self, interaction: Interaction, member: discord.Member) -> None:
        agent = self._member_agent(interaction, member, Action.RESET)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            await self._reset_prompt(interaction, agent, member.display_name)
        except UnknownAgent:
            await answer(interaction, NOTHING_STORED_MEMBER)

    @user.command(name="history", description="What changed in a member's memory here, and why (only you see it)")
    @app_commands.describe(member="Whose memory", limit=f"How many changes to list (default {HISTORY_DEFAULT})")
    async def user_history(
        self,
        interaction: Interaction,
        member: discord.Member,
        limit: app_commands.Range[int, 1, HISTORY_MAX] | None = None,
    ) -> None:
        agent = self._member_agent(interaction, member, Action.HISTORY)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._history(interaction, agent, limit, f"{member.display_name}'s")

    @user.command(name="rollback", description="Put a member's core memory back as it was at a version")
    @app_commands.describe(member="Whose memory", version="The version number (vN) from /membot user history")
    async def user_rollback(
        self, interaction: Interaction, member: discord.Member, version: app_commands.Range[int, 1]
    ) -> None:
        agent = self._member_agent(interaction, member, Action.ROLLBACK)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._rollback(interaction, agent, version)
