"""Faults in heartbeat events: a failure is logged and reported as FAILED (retried later), never raised into the
scheduler; a reflection that keeps trying to message a user who did not opt in stops after the first try."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from adapters.console import console_agent, console_message
from bot.app import open_app
from bot.runtime.heartbeat import Status
from bot.settings import Settings
from memory.redis.keys import RedisKeys
from tests.heartbeat.conftest import QUIET, heartbeats_for, make_settings  # noqa: F401  (fixture)
from tests.scenario import RecordingSink
from tests.standins.brain import Brain, heartbeat_event
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer, ScriptedReply

QUIET_SECONDS = QUIET * 60


def pushy(request: ObservedRequest) -> ScriptedReply:
    """A model that answers every heartbeat step with a message for the user."""
    if heartbeat_event(request.messages) is not None:
        return ScriptedReply(tool_calls=[("send_message", {"message": "Hi! Just checking in."})])
    return Brain()(request)


async def test_a_reflection_that_keeps_sending_while_proactive_is_off_ends_after_one_try(
    llm: ScriptedLLMServer,
    make_settings: Callable[..., Settings],  # noqa: F811
) -> None:
    llm.set_handler(pushy)
    async with open_app(make_settings(MEMBOT_MAX_STEPS=10)) as app:
        assert app.runtime is not None
        await app.runtime.handle(console_message("lea", "hello"), RecordingSink())
        await asyncio.sleep(QUIET_SECONDS * 1.5)
        before = len(llm.requests)
        outcome = await heartbeats_for(app).reflect(console_agent("lea"))
    assert outcome.status is Status.DONE and outcome.sent == 0
    assert len(llm.requests) - before == 1  # one step, not MEMBOT_MAX_STEPS


async def test_a_store_failing_during_a_reflection_is_logged_and_retried_later(
    llm: ScriptedLLMServer,
    make_settings: Callable[..., Settings],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = console_agent("max")
    async with open_app(make_settings()) as app:
        assert app.runtime is not None
        await app.runtime.handle(console_message("max", "I like sailing"), RecordingSink())
        await asyncio.sleep(QUIET_SECONDS * 1.5)
        audit_key = RedisKeys(app.settings.redis_prefix).audit(agent)
        await app.stores.redis.delete(audit_key)
        await app.stores.redis.set(audit_key, "damaged")  # the reflection's core write cannot be audited
        with caplog.at_level(logging.ERROR, logger="bot.runtime.runtime"):
            outcome = await heartbeats_for(app).reflect(agent)
        await app.stores.redis.delete(audit_key)
        record = await app.stores.activity.get(agent)
    assert outcome.status is Status.FAILED and outcome.retry_at is not None
    assert record.has_news  # not marked reflected: the next firing tries again
    [logged] = [r for r in caplog.records if r.getMessage() == "event failed"]
    assert logged.exc_info is not None  # with its traceback
