"""The rules for proactive messages: quiet hours, time zones, and whether one may go out now.

Pure functions and value types; the stored choice is ``bot.core.memory_types.ProactivePrefs`` (kept in Redis by
``memory/redis/activity.py``), and ``bot/runtime/heartbeat.py`` applies the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.core.memory_types import ProactivePrefs

_QUIET = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*$")
NO_QUIET_HOURS = ("", "none", "off")


class InvalidProactiveSetting(ValueError):
    """A quiet-hours range, time zone or daily cap that cannot be used; the message says what is expected."""


@dataclass(frozen=True)
class QuietHours:
    """A daily local-time window with no proactive messages; it may wrap past midnight (22:00-08:00)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(text: str) -> QuietHours | None:
    """``22-08`` or ``22:30-07:00`` (local time); ``none`` (or empty) means no quiet hours."""
    if text.strip().lower() in NO_QUIET_HOURS:
        return None
    match = _QUIET.match(text)
    if match:
        h1, m1, h2, m2 = (int(part) if part else 0 for part in match.groups())
        if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60:
            return QuietHours(time(h1, m1), time(h2, m2))
    raise InvalidProactiveSetting(f"invalid quiet hours {text!r}: use START-END in 24h local time, e.g. 22-08 or none")


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone such as ``Europe/Berlin`` or ``UTC``."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidProactiveSetting(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None


@dataclass(frozen=True)
class TimeZoneSetting:
    """A user's time zone for reminders and quiet hours; ``own``: theirs, not the default ``MEMBOT_TIMEZONE``."""

    zone: str
    own: bool

    def describe(self, now: datetime) -> str:
        """E.g. "Europe/Berlin (it is 14:05 there now)", and whether it is the default."""
        local = now.astimezone(parse_timezone(self.zone))
        default = "" if self.own else ", the default"
        return f"{self.zone} ({local:%H:%M} there now{default}); reminders and quiet hours use it"


@dataclass(frozen=True)
class ProactivePolicy:
    """The effective rule for one user: opt-in, daily cap, quiet hours in the user's time zone."""

    enabled: bool
    max_per_day: int
    quiet_hours: QuietHours | None
    timezone: str

    @classmethod
    def resolve(cls, prefs: ProactivePrefs, defaults: ProactivePolicy) -> ProactivePolicy:
        quiet = defaults.quiet_hours if prefs.quiet_hours is None else parse_quiet_hours(prefs.quiet_hours)
        return cls(
            enabled=prefs.enabled,
            max_per_day=defaults.max_per_day if prefs.max_per_day is None else prefs.max_per_day,
            quiet_hours=quiet,
            timezone=prefs.timezone or defaults.timezone,
        )

    def local(self, now: datetime) -> datetime:
        return now.astimezone(parse_timezone(self.timezone))

    def day(self, now: datetime) -> str:
        """The user's local date: the daily cap counts per local day."""
        return self.local(now).date().isoformat()

    def refusal(self, now: datetime, sent_today: int) -> str | None:
        """Why no proactive message may go out now, or None when one may."""
        if not self.enabled:
            return "the user has not opted in to proactive messages"
        if sent_today >= self.max_per_day:
            return f"the daily limit of {self.max_per_day} proactive message(s) is reached"
        if self.quiet_hours is not None and self.quiet_hours.contains(self.local(now).time()):
            return f"it is inside the user's quiet hours ({self.quiet_hours}, {self.timezone})"
        return None

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        quiet = f"quiet hours {self.quiet_hours}" if self.quiet_hours else "no quiet hours"
        return f"on: at most {self.max_per_day} per day, {quiet} ({self.timezone})"
