"""Who may do what with memory: the one place where permission is decided (the README's table says the same).

Subjects: the user themself (their own agents), a platform admin (a Discord member with Manage Server, a Slack
workspace admin) within that server or workspace and never on DM memory, and a bot admin (an id in
``MEMBOT_ADMIN_IDS``) everywhere. The model has no admin functions; only platform commands from a person reach
these checks. The ``membot`` command line is not checked here: whoever runs it already holds the databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.core.events import AgentKey, Scope


class Forbidden(PermissionError):
    """The actor may not do this; the message is safe to show them."""


class Action(StrEnum):
    SHOW = "show"
    SEARCH = "search"
    FORGET = "forget"
    RESET = "reset"  # erase every store of the agent (on Discord and Slack, reset is the full erase)
    EXPORT = "export"
    PROACTIVE = "proactive"
    MARK_PRIVATE = "mark_private"  # mark core memory lines private or public
    HISTORY = "history"
    ROLLBACK = "rollback"
    CHANNEL_MODE = "channel_mode"
    REMINDERS = "reminders"  # list or cancel the reminders the user asked the model for


OWN_ACTIONS = frozenset(
    {
        Action.SHOW,
        Action.SEARCH,
        Action.FORGET,
        Action.RESET,
        Action.EXPORT,
        Action.PROACTIVE,
        Action.MARK_PRIVATE,
        Action.HISTORY,
        Action.ROLLBACK,
        Action.REMINDERS,
    }
)
PLATFORM_ADMIN_ACTIONS = frozenset({Action.SHOW, Action.RESET, Action.HISTORY, Action.ROLLBACK, Action.CHANNEL_MODE})
ADMIN_ONLY = "Sorry, only server admins (or membot's configured admins) can do that."


@dataclass(frozen=True)
class Actor:
    """A person issuing a command: platform user id, the workspace (guild/team) it came from, admin rights there,
    and whether the command was given in a private context (a DM with membot)."""

    platform: str
    user_id: str
    workspace: str | None = None
    is_platform_admin: bool = False
    in_private: bool = False

    def owns(self, target: AgentKey) -> bool:
        return target.platform == self.platform and target.user == self.user_id

    def cause(self, target: AgentKey) -> str:
        """The audit cause of this actor's command on ``target``: ``user:…`` on their own memory, else ``admin:…``."""
        role = "user" if self.owns(target) else "admin"
        return f"{role}:{self.platform}:{self.user_id}"


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
        own = target is not None and actor.owns(target)
        if own and action in OWN_ACTIONS:
            return
        if actor.is_platform_admin and action in PLATFORM_ADMIN_ACTIONS:
            if target is None:
                return
            same_workspace = target.platform == actor.platform and target.workspace == actor.workspace
            if same_workspace and target.workspace not in (None, "dm"):
                return
        if action in PLATFORM_ADMIN_ACTIONS - OWN_ACTIONS or not own:
            raise Forbidden(ADMIN_ONLY)
        raise Forbidden("Sorry, you can't do that.")

    def view_scope(self, actor: Actor, target: AgentKey) -> Scope:
        """What of ``target``'s memory ``actor`` is shown: everything (PRIVATE) only to the user themself or a bot
        admin, and only in a private context; otherwise the public view (no private lines, no summary)."""
        if actor.in_private and (actor.owns(target) or self.is_bot_admin(actor)):
            return Scope.PRIVATE
        return Scope.PUBLIC
