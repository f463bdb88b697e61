"""``/memory timezone [zone]``: show or set the time zone reminders and quiet hours use for the caller.

Kept with the proactive settings (``bot.runtime.heartbeat.ProactiveControl``), per memory: this server's, or the
DMs'. Added to the ``/memory`` group of ``adapters.discord.commands`` by ``add_preference_commands``.
"""

from __future__ import annotations

from typing import Any

from discord import app_commands

from adapters.discord.commands import Interaction, actor_of, answer
from adapters.discord.normalize import agent_for
from bot.admin.authz import Action
from bot.core.events import utc_now
from bot.runtime.proactive import InvalidProactiveSetting
from bot.services import Services


def timezone_command(services: Services) -> app_commands.Command[Any, ..., None]:
    """The ``timezone`` subcommand, answering privately."""

    @app_commands.command(name="timezone", description="Your time zone for reminders and quiet hours, or set it")
    @app_commands.describe(zone="An IANA time zone, e.g. Europe/Berlin; leave it out to see yours")
    async def timezone(interaction: Interaction, zone: app_commands.Range[str, 1, 64] | None = None) -> None:
        agent = agent_for(interaction.guild_id, interaction.user.id)
        services.authz.check(actor_of(interaction), Action.PROACTIVE, agent)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            setting = await services.proactive.timezone(agent, zone)
        except InvalidProactiveSetting as exc:
            await answer(interaction, f"Sorry, {exc}.")
            return
        hint = "" if setting.own else " Set yours with e.g. `/memory timezone zone:Europe/Berlin`."
        verb = "is now" if zone else "is"
        await answer(interaction, f"Your time zone here {verb} {setting.describe(utc_now())}.{hint}")

    return timezone


def add_preference_commands(tree: app_commands.CommandTree[Any], services: Services) -> None:
    """Add the preference subcommands to ``/memory`` (before the tree is synced)."""
    memory = tree.get_command("memory")
    assert isinstance(memory, app_commands.Group), "the /memory group is registered first"
    memory.add_command(timezone_command(services))
