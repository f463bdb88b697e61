"""Confirm/Cancel buttons in front of every irreversible memory command (forget, reset)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_SECONDS = 120.0
NOT_YOURS = "These buttons belong to someone else's command."
CANCELLED = "Cancelled: nothing was erased."
TIMED_OUT = "No answer within two minutes, so nothing was erased."
FAILED = "Sorry, that failed on my side. Please try again in a moment."


class ConfirmView(discord.ui.View):
    """Two buttons; ``action`` runs only when the person who asked presses the confirm button."""

    def __init__(
        self,
        owner_id: int,
        action: Callable[[], Awaitable[str]],
        *,
        confirm_label: str,
        timeout: float = CONFIRM_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(timeout=timeout)
        self._owner_id = owner_id
        self._action = action
        self._decided = False
        self.confirm.label = confirm_label
        self.message: discord.WebhookMessage | None = None  # set once sent, so a timeout can update it

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.user.id == self._owner_id:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        return False

    def _decide(self) -> bool:
        """True the first time a button is pressed; later presses do nothing."""
        if self._decided:
            return False
        self._decided = True
        self.stop()
        return True

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction[Any], button: discord.ui.Button[ConfirmView]) -> None:
        if not self._decide():
            await interaction.response.defer()
            return
        await interaction.response.defer()
        try:
            outcome = await self._action()
        except Exception:
            log.exception("confirmed memory command failed")
            outcome = FAILED
        await interaction.edit_original_response(content=outcome, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction[Any], button: discord.ui.Button[ConfirmView]) -> None:
        if not self._decide():
            await interaction.response.defer()
            return
        await interaction.response.edit_message(content=CANCELLED, view=None)

    async def on_timeout(self) -> None:
        if self._decided or self.message is None:
            return
        self._decided = True
        try:
            await self.message.edit(content=TIMED_OUT, view=None)
        except discord.HTTPException:
            log.debug("could not mark a confirmation as timed out")
