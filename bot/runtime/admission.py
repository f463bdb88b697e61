"""Admission: the one gate every platform message passes before its turn (dedupe, rate limit, the limit notice).

Adapters call :func:`admit` with the person (their platform's ``person_of``) and the ids under which the platform may
deliver the same message twice; it answers whether the message is new, a duplicate or over the person's limit,
and tells an over-the-limit person once per minute (not once per extra message). During a store outage the
throttle given here fails open (``OutageTolerantThrottle``), so admission never loses a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from bot.core.events import OutboundReply, ReplyKind
from bot.core.ports import CheckIn, ReplySink

log = logging.getLogger(__name__)

RATE_LIMIT_NOTICE = (
    "You're sending messages faster than I can keep up with (at most {limit} a minute), so I'm skipping them "
    "until the minute is over. Please send this one again in a moment."
)
NOTICE_FLAG_SECONDS = 120  # the once-a-minute notice flag outlives its minute


class AdmissionThrottle(Protocol):
    """The two checks admission asks of the shared store (part of the ``Throttle`` port)."""

    async def check_in(self, person: str, event_ids: Sequence[str], per_minute: int) -> CheckIn:
        """Whether the event is new under every id and, if so, count it: within ``per_minute`` this minute?"""
        ...

    async def first_time(self, person: str, event_id: str, ttl_seconds: int = 86_400) -> bool:
        """Set a flag for ``event_id``; True only for the first caller."""
        ...


class Verdict(StrEnum):
    ADMITTED = "admitted"  # first delivery, within the limit: run the turn
    DUPLICATE = "duplicate"  # seen before under one of its ids: drop silently
    RATE_LIMITED = "rate_limited"  # over the limit: dropped, the person was told (once a minute)


async def admit(
    throttle: AdmissionThrottle,
    person: str,
    dedupe_ids: Sequence[str],
    per_minute: int,
    sink: ReplySink,
    reply_to: str | None,
) -> Verdict:
    """Decide whether a message of ``person`` runs a turn; empty ids in ``dedupe_ids`` are skipped.

    A platform may deliver one message under two ids (e.g. Slack's event id and its ``app_mention``/``message``
    twins): one seen before makes the message a duplicate, which is neither counted against the limit nor told.
    Both checks take one round trip to the store (``Throttle.check_in``).
    """
    ids = [dedupe_id for dedupe_id in dedupe_ids if dedupe_id]
    check = await throttle.check_in(person, ids, per_minute)
    if not check.new:
        log.info("duplicate delivery ignored", extra={"dedupe_ids": ids})
        return Verdict.DUPLICATE
    if check.within_limit:
        return Verdict.ADMITTED
    log.info("rate limited", extra={"subject": person})
    minute = int(time.time() // 60)
    if await throttle.first_time(person, f"rate-notice:{minute}", NOTICE_FLAG_SECONDS):
        await sink.send(OutboundReply(RATE_LIMIT_NOTICE.format(limit=per_minute), ReplyKind.NOTICE, reply_to))
    return Verdict.RATE_LIMITED


async def tell_once_a_day(
    throttle: AdmissionThrottle, person: str, what: str, sink: ReplySink, text: str, reply_to: str | None
) -> None:
    """Send ``text`` as a notice unless ``person`` was told ``what`` already today (UTC): a person membot turns
    away hears why, without a notice for every message."""
    day = int(time.time() // 86_400)
    if await throttle.first_time(person, f"{what}:{day}", 2 * 86_400):
        await sink.send(OutboundReply(text, ReplyKind.NOTICE, reply_to))
