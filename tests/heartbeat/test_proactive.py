"""Proactive messages: opt-in, daily cap, quiet hours, delivered where the user last spoke, kept in recall."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time

import pytest

from bot.app import App, open_app
from bot.core.events import AgentKey, utc_now
from bot.runtime.heartbeat import Heartbeats, ReflectionOutcome, Status
from bot.runtime.proactive import (
    InvalidProactiveSetting,
    ProactivePolicy,
    QuietHours,
    parse_quiet_hours,
    parse_timezone,
)
from bot.settings import Settings
from tests.heartbeat.conftest import QUIET, RecordingAdapter, heartbeats_for, message, reflection_events
from tests.scenario import RecordingSink
from tests.standins.llm_server import ScriptedLLMServer

DORA = AgentKey("discord", "G1", "dora")


async def talk_then_reflect(app: App, heartbeats: Heartbeats, text: str, channel: str = "C1") -> ReflectionOutcome:
    """The user says something in a guild channel; once the conversation is quiet, the agent reflects."""
    assert app.runtime is not None
    said = message("discord", "dora", text, channel=channel, workspace="G1", dm=False)
    await app.runtime.handle(said, RecordingSink())
    await asyncio.sleep(QUIET * 60 + 0.05)
    return await heartbeats.reflect(DORA)


def quiet_hours_around_now(now: datetime) -> str:
    return f"{(now.hour - 1) % 24:02d}-{(now.hour + 2) % 24:02d}"


async def test_no_proactive_message_without_opt_in(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    discord = RecordingAdapter("discord")
    async with open_app(make_settings()) as app:
        outcome = await talk_then_reflect(app, heartbeats_for(app, [discord]), "my exam is tomorrow")
    assert outcome.status is Status.DONE and outcome.sent == 0
    assert discord.sent == []
    assert "Proactive message allowed: no (the user has not opted in" in reflection_events(llm)[-1]


async def test_opted_in_user_gets_at_most_the_daily_cap_where_they_last_spoke(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    discord = RecordingAdapter("discord")
    async with open_app(make_settings(MEMBOT_QUIET_HOURS="none")) as app:
        assert app.services is not None and app.services.proactive is not None
        await app.services.proactive.set(DORA, True, max_per_day=2)
        heartbeats = heartbeats_for(app, [discord])
        first = await talk_then_reflect(app, heartbeats, "my exam is tomorrow", channel="C1")
        second = await talk_then_reflect(app, heartbeats, "the exam went well", channel="C2")
        third = await talk_then_reflect(app, heartbeats, "now I am on holiday", channel="C2")

        assert [first.sent, second.sent, third.sent] == [1, 1, 0]
        assert [(address.channel_id, text) for address, text in discord.sent] == [
            ("C1", "Thinking of you: my exam is tomorrow"),
            ("C2", "Thinking of you: the exam went well"),
        ]
        assert discord.sent[-1][0].workspace_id == "G1" and discord.sent[-1][0].user_id == "dora"
        assert "Proactive message allowed: yes" in reflection_events(llm)[1]
        assert "daily limit of 2 proactive message(s) is reached" in reflection_events(llm)[2]
        recalled = [e for e in await app.stores.recall.export(DORA) if e["text"].startswith("Thinking of you")]
        assert [(e["role"], e["channel"], e["scope"]) for e in recalled] == [
            ("assistant", "C1", "public"),
            ("assistant", "C2", "public"),
        ]
        today = (await app.services.proactive.policy(DORA)).day(utc_now())
        assert await app.stores.activity.proactive_sent(DORA, today) == 2


async def test_no_proactive_message_inside_quiet_hours_or_without_the_platform(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    discord = RecordingAdapter("discord")
    async with open_app(make_settings()) as app:
        assert app.services is not None and app.services.proactive is not None
        quiet = quiet_hours_around_now(datetime.now(UTC))
        await app.services.proactive.set(DORA, True, quiet_hours=quiet, timezone="UTC")
        inside = await talk_then_reflect(app, heartbeats_for(app, [discord]), "are you awake?")
        assert inside.sent == 0 and discord.sent == []
        assert "inside the user's quiet hours" in reflection_events(llm)[-1]

        await app.services.proactive.set(DORA, True, quiet_hours="none")
        unplugged = await talk_then_reflect(app, heartbeats_for(app, []), "hello again")  # no Discord connection
        assert unplugged.sent == 0
        assert "not connected to the platform the user last spoke on" in reflection_events(llm)[-1]


def test_quiet_hours_and_policy_rules() -> None:
    night = parse_quiet_hours("22-08")
    assert night == QuietHours(time(22), time(8))
    assert night.contains(time(23, 30)) and night.contains(time(7, 59)) and not night.contains(time(8))
    assert not night.contains(time(12)) and str(night) == "22:00-08:00"
    lunch = parse_quiet_hours("12:30-13:15")
    assert lunch is not None and lunch.contains(time(13)) and not lunch.contains(time(13, 15))
    assert parse_quiet_hours("none") is None
    for bad in ("25-08", "evening", "22-"):
        with pytest.raises(InvalidProactiveSetting, match="invalid quiet hours"):
            parse_quiet_hours(bad)
    with pytest.raises(InvalidProactiveSetting, match="unknown time zone"):
        parse_timezone("Mars/Olympus")

    berlin = ProactivePolicy(enabled=True, max_per_day=1, quiet_hours=night, timezone="Europe/Berlin")
    noon_utc = datetime(2024, 6, 1, 12, tzinfo=UTC)
    late_utc = datetime(2024, 6, 1, 21, 30, tzinfo=UTC)  # 23:30 in Berlin (summer time)
    assert berlin.refusal(noon_utc, sent_today=0) is None
    assert "quiet hours" in (berlin.refusal(late_utc, sent_today=0) or "")
    assert "daily limit" in (berlin.refusal(noon_utc, sent_today=1) or "")
    assert berlin.day(datetime(2024, 6, 1, 22, 30, tzinfo=UTC)) == "2024-06-02"  # the cap counts local days
    off = ProactivePolicy(enabled=False, max_per_day=5, quiet_hours=None, timezone="UTC")
    assert "not opted in" in (off.refusal(noon_utc, 0) or "") and off.describe() == "off"


def test_invalid_heartbeat_settings_name_the_variable(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="MEMBOT_QUIET_HOURS"):
        make_settings(MEMBOT_QUIET_HOURS="late")
    with pytest.raises(ValueError, match="MEMBOT_TIMEZONE"):
        make_settings(MEMBOT_TIMEZONE="Nowhere/Land")
