"""Fencing: proof that a turn still holds its agent's lock, carried by every memory write of that turn.

Taking an agent's lock yields a :class:`Fence` (a token unique to that holding). A turn passes it to the stores
(``fence=`` on each write); the store checks, atomically with the write where Redis allows it, that the lock is
still held with that token, and raises :class:`LockLost` otherwise. So a turn whose lease ran out (its process
stalled, Redis was unreachable while the watchdog tried to renew) and whose agent another process has since taken
writes nothing more. ``fence=None`` means unfenced: admin and CLI paths and tests that write outside a turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.events import AgentKey

BUSY_NOTICE = "I'm still finishing something from before; I'll answer this message as soon as I can."
LOCK_LOST_NOTICE = (
    "Sorry, I lost track of this conversation partway through (another process took it over). Your message is "
    "saved; please send it again if I don't pick it up."
)


class LockLost(Exception):
    """The turn no longer holds its agent's lock (its lease expired and another holder may have taken it): the
    write was refused and the turn must stop writing."""


@dataclass(frozen=True)
class Fence:
    """One holding of an agent's lock: ``token`` is the lock's value while this holding lasts.

    ``number`` counts the holdings of this agent (it grows with every acquisition), which says in logs which
    holder superseded which.
    """

    agent: AgentKey
    token: str

    @property
    def number(self) -> int:
        head, _, _ = self.token.partition(":")
        return int(head) if head.isdigit() else 0

    def __str__(self) -> str:
        return f"{self.agent}#{self.number}"


def fence_token(fence: Fence | None, agent: AgentKey) -> str:
    """The token a store sends with a write of ``agent`` ('' for unfenced); a fence of another agent is a bug."""
    if fence is None:
        return ""
    if fence.agent != agent:
        raise ValueError(f"a fence of {fence.agent} cannot guard a write of {agent}")
    return fence.token
