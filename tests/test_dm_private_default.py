"""Private by default in DMs: what the model saves during a DM turn (core lines, archival notes) is private unless the
user said it may be shared (the model passes ``private: false``); what it saves in a public channel is public.
Real app, the scripted model (tests/standins/brain.py) with one extra intent for sharing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.app import App, open_app
from bot.core.events import AgentKey, Scope
from bot.core.tools import tool_specs
from tests.scenario import RecordingSink, settings_for, slack_said
from tests.standins.brain import Brain, user_text
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer, ScriptedReply

ANN = AgentKey("slack", "T1", "U1")  # one agent for Ann's DMs and channels, as on Slack
DM_FACTS = ("Quill", "asthma")


def with_sharing(brain: Brain):  # type: ignore[no-untyped-def]
    """The brain, and: ``share: X`` → core_memory_append(human, X, private=false) (the user said it may be shared);
    ``change: OLD => NEW`` → core_memory_replace(human, OLD, NEW)."""

    def handler(request: ObservedRequest) -> ScriptedReply:
        last = request.messages[-1]
        said = user_text(last["content"]) if last["role"] == "user" else ""
        if said.lower().startswith("share:"):
            args = {"label": "human", "content": said.split(":", 1)[1].strip(), "private": False}
            return ScriptedReply(tool_calls=[("core_memory_append", {**args, "request_heartbeat": True})])
        if said.lower().startswith("change:"):
            old, new = (part.strip() for part in said.split(":", 1)[1].split("=>"))
            args = {"label": "human", "old_content": old, "new_content": new, "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("core_memory_replace", args)])
        return brain(request)

    return handler


@pytest.fixture
async def app(llm: ScriptedLLMServer, brain: Brain, key_prefix: str, data_dir: Path):  # type: ignore[no-untyped-def]
    llm.set_handler(with_sharing(brain))
    async with open_app(settings_for(llm, "openai", key_prefix, data_dir)) as running:
        assert running.runtime is not None
        sink = RecordingSink()
        for text, dm in (
            ("my name is Quill", True),  # core line, learned in a DM
            ("remember: Ann has asthma", True),  # archival note, learned in a DM
            ("share: Runs the book club", True),  # the user said this may be shared
            ("remember: Ann hosts the Tuesday quiz", False),  # learned in public
        ):
            await running.runtime.handle(slack_said(text, dm=dm), sink)
        yield running


QUESTIONS = ("what is my name?", "recall: asthma Quill", "search: Quill asthma")


def prompt_text(request: ObservedRequest) -> str:
    """What membot put in the request: the system prompt, function results and the conversation, leaving out the
    questions asked here and the model's own calls (which repeat the questions' words)."""
    shown = [
        m
        for m in request.messages
        if m["role"] != "assistant" and not any(q in str(m.get("content")) for q in QUESTIONS)
    ]
    return request.system + json.dumps(shown)


async def test_a_dm_fact_is_saved_private_and_a_shared_or_channel_fact_public(app: App) -> None:
    human = {b.label: b.value for b in await app.stores.core.blocks(ANN)}["human"]
    assert "\n[private] Name: Quill" in human
    assert "\nRuns the book club" in human
    public_notes = (await app.stores.archival.search(ANN, "asthma quiz", 0, Scope.PUBLIC)).hits
    assert [hit.text for hit in public_notes] == ["Ann hosts the Tuesday quiz"]
    assert await app.stores.archival.count(ANN) == 2 and await app.stores.archival.count(ANN, Scope.PUBLIC) == 1


async def test_a_dm_fact_never_reaches_a_channel_prompt_search_or_public_view(app: App, llm: ScriptedLLMServer) -> None:
    assert app.runtime is not None
    view = (await app.admin.show(ANN, Scope.PUBLIC)).as_dict()  # /memory show in a channel; an admin's view
    assert not any(fact in json.dumps(view) for fact in DM_FACTS) and view["hidden_private_lines"] == 1
    history = await app.repair.history(ANN, scope=Scope.PUBLIC)  # an admin's history
    assert not any(fact in json.dumps([i.as_dict() for i in history]) for fact in DM_FACTS)
    hits = await app.admin.search(ANN, "Quill asthma", Scope.PUBLIC)  # /memory search in a channel
    assert hits and not any(fact in hit.text for hit in hits for fact in DM_FACTS)

    before = len(llm.requests)
    sink = RecordingSink()
    for question in QUESTIONS:
        await app.runtime.handle(slack_said(question, dm=False), sink)
    channel = " ".join(prompt_text(r) for r in llm.requests[before:])
    leaks = [channel[max(0, channel.find(f) - 200) : channel.find(f) + 50] for f in DM_FACTS if f in channel]
    assert not leaks, leaks
    assert "Runs the book club" in channel and "Tuesday quiz" in channel, "what is public is there"
    assert "I don't know your name yet." in sink.messages

    before = len(llm.requests)
    await app.runtime.handle(slack_said("what is my name?", dm=True), sink)
    assert "Name: Quill" in llm.requests[before].system, "the DM still knows it"


def test_the_model_is_told_the_default() -> None:
    spec = {s.name: s for s in tool_specs()}
    for name in ("core_memory_append", "core_memory_replace", "archival_memory_insert"):
        private = spec[name].parameters["properties"]["private"]
        assert "direct message" in private["description"] and private.get("default") is None
        assert "private" not in spec[name].parameters["required"]


async def test_a_public_line_changed_in_a_dm_becomes_private(app: App, llm: ScriptedLLMServer) -> None:
    assert app.runtime is not None
    sink = RecordingSink()
    await app.runtime.handle(
        slack_said("change: Runs the book club => Runs the book club, owes it 300 EUR", dm=True), sink
    )
    human = {b.label: b.value for b in await app.stores.core.blocks(ANN)}["human"]
    assert "\n[private] Runs the book club, owes it 300 EUR" in human
    before = len(llm.requests)
    await app.runtime.handle(slack_said("hello all", dm=False), sink)
    assert "300 EUR" not in llm.requests[before].system
