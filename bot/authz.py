"""Who may do what with memory: the one place where permission is decided.

Subjects: the user themself (their own agents), a platform admin (a Discord member with Manage Server, a Slack
workspace admin) within that server or workspace, and a bot admin (an id in ``MEMBOT_ADMIN_IDS``) everywhere.
The model has no admin functions; only platform commands from a person reach these checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.events import AgentKey


class Forbidden(PermissionError):
    """The actor may not do this; the message is safe to show them."""


class Action(StrEnum):
    SHOW = "show"
    SEARCH = "search"
    FORGET = "forget"
    RESET = "reset"
    EXPORT = "export"
    CHANNEL_MODE = "channel_mode"
    PROACTIVE = "proactive"


OWN_ACTIONS = frozenset({Action.SHOW, Action.SEARCH, Action.FORGET, Action.RESET, Action.EXPORT, Action.PROACTIVE})
PLATFORM_ADMIN_ACTIONS = frozenset({Action.SHOW, Action.RESET, Action.CHANNEL_MODE})


@dataclass(frozen=True)
class Actor:
    """A person issuing a command: platform user id, the workspace (guild/team) it came from, admin rights there."""

    platform: str
    user_id: str
    workspace: str | None = None
    is_platform_admin: bool = False


class Authorizer:
    """Decides every memory command; raises Forbidden with a polite reason."""

    def __init__(self, bot_admin_ids: frozenset[str]) -> None:
        self._bot_admins = bot_admin_ids

    def is_bot_admin(self, actor: Actor) -> bool:
        return actor.user_id in self._bot_admins

    def check(self, actor: Actor, action: Action, target: AgentKey | None = None) -> None:
        """Allow or raise Forbidden. ``target`` is the agent acted on (None for channel settings)."""
        if self.is_bot_admin(actor):
            return
        own = target is not None and target.platform == actor.platform and target.user == actor.user_id
        if own and action in OWN_ACTIONS:
            return
        if actor.is_platform_admin and action in PLATFORM_ADMIN_ACTIONS:
            if target is None:
                return
            same_workspace = target.platform == actor.platform and target.workspace == actor.workspace
            if same_workspace and target.workspace not in (None, "dm"):
                return
        if action in PLATFORM_ADMIN_ACTIONS - OWN_ACTIONS or not own:
            raise Forbidden("Sorry, only server admins (or membot's configured admins) can do that.")
        raise Forbidden("Sorry, you can't do that.")
