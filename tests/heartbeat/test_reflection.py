"""Reflection through the real app and scheduler: real Redis, embedded Qdrant, real SDK, scripted model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from adapters.console import console_agent, console_message
from bot.app import App, open_app
from bot.core.events import AgentKey, utc_now
from bot.runtime.heartbeat import Status
from bot.settings import Settings
from tests.heartbeat.conftest import QUIET, heartbeats_for, human_block, reflection_events
from tests.scenario import RecordingSink, eventually
from tests.standins.brain import Brain, heartbeat_event
from tests.standins.llm_server import ScriptedLLMServer

QUIET_SECONDS = QUIET * 60


async def test_a_quiet_conversation_gets_exactly_one_reflection_that_writes_to_memory(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    ann = console_agent("ann")
    async with open_app(make_settings()) as app:
        assert app.runtime is not None and app.scheduler is not None
        await app.start([])
        sink = RecordingSink()
        await app.runtime.handle(console_message("ann", "my name is Ann"), sink)
        await app.runtime.handle(console_message("ann", "I went hiking in the Alps last weekend"), sink)
        jobs = {job.id: job for job in await app.scheduler.jobs()}
        assert jobs["reflect:console:ann"].kind == "reflect" and jobs["reflect:console:ann"].agent == "console:ann"
        assert "consolidate:console:ann" in jobs

        await eventually(lambda: len(reflection_events(llm)) == 1, what="the reflection")
        await eventually(lambda: len(heartbeat_requests(llm)) == 2, what="the reflection's two steps")
        await asyncio.sleep(4 * QUIET_SECONDS)  # several quiet periods later: still one
        assert len(reflection_events(llm)) == 1
        event = reflection_events(llm)[0]
        assert "the user sent 2 message(s)" in event and "Proactive message allowed: no" in event

        assert "Reflection: 2 new message(s) reviewed." in await human_block(app, ann)
        notes = await app.stores.archival.export(ann)
        assert [n["source"] for n in notes] == ["reflection"]
        assert "hiking in the Alps" in notes[0]["text"]
        written = [(e.kind, e.cause) for e in await app.stores.audit.history(ann, 2)]
        assert written == [("archival_insert", "heartbeat:reflection"), ("core_append", "heartbeat:reflection")]
        record = await app.stores.activity.get(ann)
        assert not record.has_news and record.messages_since == 0
        assert sink.messages == ["Got it, I'll remember that.", "echo: I went hiking in the Alps last weekend"]
        # the event is in the queue (the model's context) but never in recall (not part of the conversation)
        queue = await app.stores.working.messages(ann)
        assert sum(m.content.startswith("[system] Heartbeat (reflection)") for m in queue) == 1
        assert not any("Heartbeat" in entry["text"] for entry in await app.stores.recall.export(ann))
        assert "reflect:console:ann" not in {job.id for job in await app.scheduler.jobs()}


async def test_an_agent_with_nothing_new_gets_no_reflection_and_no_model_call(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    bob = console_agent("bob")
    async with open_app(make_settings()) as app:
        assert app.runtime is not None and app.scheduler is not None
        await app.start([])
        scheduler = app.scheduler
        await app.runtime.handle(console_message("bob", "hello there"), RecordingSink())
        await eventually(lambda: len(heartbeat_requests(llm)) == 2, what="the first reflection")
        await eventually(lambda: has_no_news(app, bob), what="the reflection to be recorded")
        requests = len(llm.requests)

        # the job fires again (as after a restart or a duplicate plan): nothing new since the last reflection
        await scheduler.schedule_reflection(bob, utc_now())
        await eventually(lambda: sum(job == "reflect:console:bob" for job, _ in scheduler.runs) == 2)
        assert len(llm.requests) == requests
        assert (await heartbeats_for(app).reflect(bob)).status is Status.NOTHING_NEW
        # and an agent nobody ever spoke to
        assert (await heartbeats_for(app).reflect(console_agent("nobody"))).status is Status.NOTHING_NEW
        assert len(llm.requests) == requests


async def test_a_message_during_a_reflection_waits_for_it_and_no_core_update_is_lost(
    llm: ScriptedLLMServer, brain: Brain, make_settings: Callable[..., Settings]
) -> None:
    brain.heartbeat_delay = 1.5  # the reflection's first model call is slow
    cy = console_agent("cy")
    async with open_app(make_settings()) as app:
        assert app.runtime is not None
        await app.start([])
        sink = RecordingSink()
        await app.runtime.handle(console_message("cy", "my name is Cy"), sink)
        await eventually(lambda: len(reflection_events(llm)) == 1, what="the reflection to start")

        started = time.monotonic()
        await app.runtime.handle(console_message("cy", "my name is Cyrus"), sink)
        waited = time.monotonic() - started

        assert waited > 0.5, "the turn must wait for the reflection's lock"
        assert sink.messages == ["Got it, I'll remember that.", "Got it, I'll remember that."]
        kinds = ["heartbeat" if heartbeat_event(r.messages) else "turn" for r in llm.requests]
        assert kinds == ["turn", "turn", "heartbeat", "heartbeat", "turn", "turn"]  # reflection first, whole
        lines = (await human_block(app, cy)).splitlines()
        assert lines[-3:] == [  # learned in private (the console, a heartbeat): private lines
            "[private] Name: Cy",
            "[private] Reflection: 1 new message(s) reviewed.",
            "[private] Name: Cyrus",
        ]
        record = await app.stores.activity.get(cy)
        assert record.has_news and record.messages_since == 1  # the new message waits for the next reflection


def heartbeat_requests(llm: ScriptedLLMServer) -> list[object]:
    return [r for r in llm.requests if heartbeat_event(r.messages)]


async def has_no_news(app: App, agent: AgentKey) -> bool:
    return not (await app.stores.activity.get(agent)).has_news
