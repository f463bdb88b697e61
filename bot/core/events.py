"""Normalized events that wake an agent, and the replies it sends back.

Adapters turn platform payloads into these frozen dataclasses at the edge; the runtime never sees a
discord.py or Slack object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

_KEY_PART = re.compile(r"^[A-Za-z0-9_.\-@]{1,128}$")
_PLATFORM = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")


class InvalidAgentKey(ValueError):
    """An agent key string that does not name an agent."""


class Scope(StrEnum):
    """Privacy scope of a memory: learned in a DM (private) or in a shared channel (public)."""

    PRIVATE = "private"
    PUBLIC = "public"


@dataclass(frozen=True, order=True)
class AgentKey:
    """Identity of one agent: ``<platform>:<workspace>:<user>``, or ``<platform>:<user>`` without a workspace.

    A platform-neutral value: each adapter builds its platform's keys and owns its rules (adapters/keys.py).
    """

    platform: str
    workspace: str | None
    user: str

    def __post_init__(self) -> None:
        if not _PLATFORM.match(self.platform):
            raise InvalidAgentKey(f"invalid platform {self.platform!r}: use 1-32 lowercase letters, digits, '_' or '-'")
        parts = [self.user] if self.workspace is None else [self.workspace, self.user]
        for part in parts:
            if not _KEY_PART.match(part):
                raise InvalidAgentKey(
                    f"invalid agent key part {part!r}: use 1-128 letters, digits, '_', '-', '.', or '@'"
                )

    @classmethod
    def parse(cls, text: str) -> AgentKey:
        """Parse ``platform:workspace:user`` (or ``platform:user``); raise InvalidAgentKey with the reason."""
        parts = text.strip().split(":")
        if len(parts) == 2:
            return cls(parts[0], None, parts[1])
        if len(parts) == 3:
            return cls(parts[0], parts[1], parts[2])
        raise InvalidAgentKey(
            f"invalid agent key {text!r}: expected <platform>:<workspace>:<user> or <platform>:<user>"
        )

    def __str__(self) -> str:
        if self.workspace is None:
            return f"{self.platform}:{self.user}"
        return f"{self.platform}:{self.workspace}:{self.user}"


@dataclass(frozen=True)
class Attachment:
    """A file attached to an inbound message; ``content`` is filled when the adapter downloaded it (images, for a
    model that sees them), ``problem`` says why an image could not be (it completes "I couldn't look at <file>: ")."""

    filename: str
    content_type: str | None = None
    size: int | None = None
    url: str | None = None
    content: bytes | None = field(default=None, repr=False)
    problem: str | None = None


@dataclass(frozen=True)
class ChannelMessage:
    """A recent message from someone else in the same public channel, so the bot can follow the room."""

    author_name: str
    text: str
    timestamp: datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class InboundMessage:
    """One user message from any platform, normalized; ``agent_key`` is the agent it wakes, chosen by the adapter
    (its platform's rule for who one agent is)."""

    agent_key: AgentKey
    platform: str
    workspace_id: str | None
    channel_id: str
    author_id: str
    author_name: str
    text: str
    is_dm: bool = True
    thread_id: str | None = None
    message_id: str | None = None
    timestamp: datetime = field(default_factory=utc_now)
    attachments: tuple[Attachment, ...] = ()
    recent_context: tuple[ChannelMessage, ...] = ()
    channel_name: str | None = None

    @property
    def address(self) -> ReplyAddress:
        return ReplyAddress(
            self.platform, self.channel_id, self.author_id, self.workspace_id, self.thread_id, self.is_dm
        )

    @property
    def scope(self) -> Scope:
        return Scope.PRIVATE if self.is_dm else Scope.PUBLIC


@dataclass(frozen=True)
class ReplyAddress:
    """Where to reach a user on a platform: the channel (a DM channel for private talk) and thread."""

    platform: str
    channel_id: str
    user_id: str
    workspace_id: str | None = None
    thread_id: str | None = None
    is_dm: bool = True


class ReplyKind(StrEnum):
    MESSAGE = "message"  # the agent's own words, from send_message
    NOTICE = "notice"  # a notice from membot itself (rate limit, error, rejected input)


@dataclass(frozen=True)
class OutboundReply:
    """Something to show the user: a send_message from the agent or a notice from membot."""

    text: str
    kind: ReplyKind = ReplyKind.MESSAGE
    reply_to: str | None = None
