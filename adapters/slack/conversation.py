"""One message event → (maybe) one agent turn: decide, dedupe, rate-limit, import documents, fetch images, enrich,
run.

Runs in a background task after the event was acknowledged. Every step that can drop the message says why in
the log (event id and reason, never the message body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.keys import person_of
from bot.core.events import AgentKey, OutboundReply, ReplyKind
from bot.core.memory_types import event_cause
from bot.runtime.admission import Verdict, admit, tell_once_a_day
from bot.runtime.channels import DEFAULT_MODE, NOT_ALLOWED_NOTICE, SWITCHED_OFF_NOTICE, ChannelMode, reach
from bot.runtime.runtime import TURN_FAILED_NOTICE

from .deps import SlackDeps
from .files import SlackStatus, import_files
from .images import fetch_images, image_files
from .normalize import SlackFile, SlackMessage, Trigger, parse_event, to_inbound, trigger
from .sink import SlackSink

log = logging.getLogger(__name__)


async def handle_message_event(
    deps: SlackDeps, body: Mapping[str, Any], bot_user_id: str | None, retry_num: str | None
) -> None:
    """Answer an ``app_mention``/``message`` event if membot should, exactly once, or only remember it (a channel
    in ``listen`` mode); a failure outside the turn (dedupe, rate limit, file import, channel lookups) is logged and
    told to the user briefly."""
    message = parse_event(body, bot_user_id)
    if message is None:
        return
    reason = trigger(message)
    mode = DEFAULT_MODE.value if message.is_dm else await _channel_mode(deps, message.channel_id)
    if reason is None and mode in (ChannelMode.MENTION, ChannelMode.OFF):
        return  # the common case in a busy channel: nothing more to look up
    event_id = str(body.get("event_id") or "")
    sink = SlackSink(
        deps.client,
        channel_id=message.channel_id,
        user_id=message.user_id,
        thread_ts=message.reply_thread,
        is_dm=message.is_dm,
        on_posted=deps.directory.mark_thread,
        working_after=deps.services.settings.working_notice_after,
    )
    try:
        if not deps.allowlist.permits(channel_id=message.channel_id, user_id=message.user_id, in_dm=message.is_dm):
            if reason in (Trigger.DIRECT, Trigger.MENTION):
                await _tell_once(deps, message, "not-allowed", NOT_ALLOWED_NOTICE, sink)
            return
        addressed = reason is not None and (
            reason is not Trigger.THREAD
            or await deps.directory.bot_in_thread(message.channel_id, str(message.thread_ts), bot_user_id)
        )
        fate = reach(mode, addressed=addressed, in_dm=message.is_dm)
        if fate.remember:
            await _remember(deps, message, bot_user_id)
        elif fate.answer:
            await _answer(
                deps,
                message,
                reason if addressed and reason else Trigger.CHANNEL,
                sink,
                bot_user_id,
                event_id,
                retry_num,
            )
        elif mode == ChannelMode.OFF and reason is Trigger.MENTION:
            await _tell_once(deps, message, f"off:{message.channel_id}", SWITCHED_OFF_NOTICE, sink)
    except Exception:
        log.exception("Slack message could not be handled", extra={"event_id": event_id})
        await sink.send(OutboundReply(TURN_FAILED_NOTICE, ReplyKind.NOTICE, message.ts))


async def _channel_mode(deps: SlackDeps, channel_id: str) -> str:
    try:
        return await deps.services.channel_modes.get("slack", channel_id)
    except Exception:
        log.exception("could not read the channel's mode", extra={"channel": channel_id})
        return DEFAULT_MODE.value


async def _tell_once(deps: SlackDeps, message: SlackMessage, what: str, text: str, sink: SlackSink) -> None:
    person = person_of(AgentKey("slack", message.team_id, message.user_id))
    await tell_once_a_day(deps.services.throttle, person, what, sink, text, message.ts)


async def _remember(deps: SlackDeps, message: SlackMessage, bot_user_id: str | None) -> None:
    """Keep a message of a ``listen`` channel in its author's recall memory (once, whatever redelivers it)."""
    person = person_of(AgentKey("slack", message.team_id, message.user_id))
    if not await deps.services.throttle.first_time(person, message.dedupe_key):
        return
    inbound = to_inbound(
        message,
        bot_user_id,
        author_name=await deps.directory.display_name(message.user_id),
        channel_name=await deps.directory.channel_name(message.channel_id),
        recent=(),
    )
    await deps.services.runtime.remember(inbound)


async def _answer(
    deps: SlackDeps,
    message: SlackMessage,
    reason: Trigger,
    sink: SlackSink,
    bot_user_id: str | None,
    event_id: str,
    retry_num: str | None,
) -> None:
    services = deps.services
    person = person_of(AgentKey("slack", message.team_id, message.user_id))
    # the event id catches Slack's retries, the dedupe key the app_mention + message twins of one message
    verdict = await admit(
        services.throttle,
        person,
        (event_id, message.dedupe_key),
        services.settings.rate_limit_per_minute,
        sink,
        message.ts,
    )
    if verdict is not Verdict.ADMITTED:
        log.info("message not admitted", extra={"event_id": event_id, "retry_num": retry_num, "verdict": verdict})
        return
    images = image_files(message.files)
    documents = tuple(f for f in message.files if f not in images)
    if message.is_dm and documents:
        await _import(deps, message, documents)
        if not message.text.strip() and not images:
            return
    attachments = await fetch_images(deps.client, deps.bot_token, message.files, enabled=services.runtime.sees_images)
    inbound = to_inbound(
        message,
        bot_user_id,
        author_name=await deps.directory.display_name(message.user_id),
        channel_name=None if message.is_dm else await deps.directory.channel_name(message.channel_id),
        recent=()
        if message.is_dm
        else await deps.directory.recent(message.channel_id, message.thread_ts, message.ts, bot_user_id),
        attachments=attachments,
    )
    await services.runtime.handle(inbound, sink)


async def _import(deps: SlackDeps, message: SlackMessage, files: tuple[SlackFile, ...]) -> None:
    """Import the DM's documents (every file but its images), with their progress in one status message; a failed
    import (the memory store unreachable, a bug) is told in it, and never keeps the message's text from its turn."""
    agent = AgentKey("slack", message.team_id, message.user_id)
    cause = event_cause("slack", message.ts)
    status = SlackStatus(deps.client, message.channel_id, message.reply_thread)
    await import_files(deps.client, deps.bot_token, deps.services.admin, agent, files, cause, status)
