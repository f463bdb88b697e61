"""Explicit dates in a search query ("on 3 June, 2023", "in July 2023", "2023-05-08", "in 2022") as a time window.

Hybrid search uses the window to add time-filtered prefetches, so messages from that time rank higher without
hiding the others. Only absolute dates are read: relative ones ("last week") need to know when the question is
asked about, and a month without a year is ambiguous, so both give no window. No model, no network.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# what is said about an event usually comes during it or within days after ("last weekend I ...")
MENTION_SLACK = timedelta(days=7)

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DAY_MONTH_YEAR = re.compile(rf"\b{_DAY}\s+(?:of\s+)?({_MONTH})\.?,?\s+(\d{{4}})\b", re.IGNORECASE)
_MONTH_DAY_YEAR = re.compile(rf"\b({_MONTH})\.?\s+{_DAY},?\s+(\d{{4}})\b", re.IGNORECASE)
_MONTH_YEAR = re.compile(rf"\b({_MONTH})\.?,?\s+(?:of\s+)?(\d{{4}})\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(?:in|during|throughout|of)\s+((?:19|20)\d{2})\b", re.IGNORECASE)


@dataclass(frozen=True)
class TimeWindow:
    """``start <= moment < end``, aware UTC."""

    start: datetime
    end: datetime

    def widened(self, after: timedelta = MENTION_SLACK) -> TimeWindow:
        return TimeWindow(self.start, self.end + after)


def _day(year: int, month: int, day: int) -> TimeWindow | None:
    try:
        start = datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None
    return TimeWindow(start, start + timedelta(days=1))


def query_window(query: str) -> TimeWindow | None:
    """The first absolute date in ``query`` as a day, month or year window; None when there is none."""
    days: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[int, int, int]]], ...] = (
        (_ISO, lambda m: (int(m[1]), int(m[2]), int(m[3]))),
        (_DAY_MONTH_YEAR, lambda m: (int(m[3]), _MONTHS[m[2].lower()], int(m[1]))),
        (_MONTH_DAY_YEAR, lambda m: (int(m[3]), _MONTHS[m[1].lower()], int(m[2]))),
    )
    for pattern, parts in days:
        if (match := pattern.search(query)) and (window := _day(*parts(match))):
            return window
    if match := _MONTH_YEAR.search(query):
        year, month = int(match[2]), _MONTHS[match[1].lower()]
        start = datetime(year, month, 1, tzinfo=UTC)
        return TimeWindow(start, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC))
    if match := _YEAR.search(query):
        year = int(match[1])
        return TimeWindow(datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC))
    return None
