"""Shared test data for the memory tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.console import console_agent
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import RecallEntry

ALICE = console_agent("alice")
BOB = AgentKey("discord", "guild1", "bob")
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def recall_entry(
    agent: AgentKey,
    text: str,
    minutes: int = 0,
    *,
    role: str = "user",
    scope: Scope = Scope.PRIVATE,
    message_id: str | None = None,
) -> RecallEntry:
    return RecallEntry(
        agent=agent,
        role=role,
        text=text,
        timestamp=T0 + timedelta(minutes=minutes),
        author="alice" if role == "user" else "membot",
        platform=agent.platform,
        channel="dm" if scope == Scope.PRIVATE else "general",
        scope=scope,
        message_id=message_id,
    )
