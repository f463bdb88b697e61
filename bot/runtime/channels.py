"""Who membot listens to, where: per-channel modes set by admins, and allowlists of channels and people.

Every adapter asks the same two questions here, so the rules are written once:

- ``reach(mode, addressed=..., in_dm=...)``: does a message get an answer, and is it remembered without one?
  - ``off``: membot neither answers nor reads the channel (a mention gets a short notice, once a day).
  - ``mention`` (the default): answers when mentioned or replied to.
  - ``always``: answers every message.
  - ``listen``: reads and remembers every public message (in its author's recall memory, searchable later) and
    answers only when addressed.
  A direct message is always answered.
- ``Allowlist.permits(...)``: with ``MEMBOT_ALLOWED_CHANNELS`` set, only those channels (DMs are not channels);
  with ``MEMBOT_ALLOWED_USERS`` set, only those people, in channels and DMs alike. Someone turned away who
  addressed membot is told once a day (never silent), everyone else is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.ports import ChannelMode

__all__ = [
    "DEFAULT_MODE",
    "MODE_EXPLAINED",
    "NOT_ALLOWED_NOTICE",
    "SWITCHED_OFF_NOTICE",
    "Allowlist",
    "ChannelMode",
    "Reach",
    "parse_ids",
    "reach",
]


DEFAULT_MODE = ChannelMode.MENTION

MODE_EXPLAINED = {
    ChannelMode.OFF: "From now on I stay out of this channel: I don't answer or read it.",
    ChannelMode.MENTION: "From now on I answer in this channel only when mentioned or replied to.",
    ChannelMode.ALWAYS: "From now on I answer every message in this channel.",
    ChannelMode.LISTEN: (
        "From now on I read and remember what is said in this channel, and answer only when mentioned or replied to."
    ),
}
SWITCHED_OFF_NOTICE = "I'm switched off in this channel (an admin chose so). Write to me directly instead."
NOT_ALLOWED_NOTICE = "I'm not set up to talk with you here. Ask an admin of this membot if you think I should be."


@dataclass(frozen=True)
class Reach:
    """What becomes of one message: answered (a turn), remembered without an answer, or neither."""

    answer: bool
    remember: bool = False

    @property
    def ignored(self) -> bool:
        return not self.answer and not self.remember


def reach(mode: ChannelMode | str, *, addressed: bool, in_dm: bool) -> Reach:
    """Whether a message (from a person, not a bot) is answered or only remembered, by its channel's mode."""
    if in_dm:
        return Reach(answer=True)
    match ChannelMode.parse(str(mode)):
        case ChannelMode.OFF:
            return Reach(answer=False)
        case ChannelMode.MENTION:
            return Reach(answer=addressed)
        case ChannelMode.ALWAYS:
            return Reach(answer=True)
        case ChannelMode.LISTEN:
            return Reach(answer=addressed, remember=not addressed)


def parse_ids(value: str) -> frozenset[str]:
    """A comma- or space-separated list of platform ids (empty: no restriction)."""
    return frozenset(part for part in value.replace(",", " ").split() if part)


@dataclass(frozen=True)
class Allowlist:
    """Channels and people membot may talk with; an empty set allows all."""

    channels: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    @classmethod
    def of(cls, channels: Iterable[str] = (), users: Iterable[str] = ()) -> Allowlist:
        return cls(frozenset(channels), frozenset(users))

    def permits(self, *, channel_id: str, user_id: str, in_dm: bool, parent_id: str | None = None) -> bool:
        """Whether ``user_id`` may talk with membot in ``channel_id`` (a thread counts as its ``parent_id``)."""
        if self.users and user_id not in self.users:
            return False
        if in_dm or not self.channels:
            return True
        return channel_id in self.channels or (parent_id is not None and parent_id in self.channels)
