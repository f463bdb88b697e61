"""Forget is complete: the text leaves recall, archival, the live queue, both summaries and core memory (whole lines
only), no rollback brings it back, and the audit trail keeps only the fact of the forget. Real app, scripted model
whose summaries retell what they were given (as a real model's would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.admin.redaction import FORGOTTEN, Redactor
from bot.app import App, open_app
from bot.core.events import AgentKey, Scope
from tests.scenario import RecordingSink, settings_for, slack_said
from tests.standins.brain import Brain, is_summary_request
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer, ScriptedReply

ANN = AgentKey("slack", "T1", "U1")
SECRET = "4711"


def retelling(brain: Brain):  # type: ignore[no-untyped-def]
    """The brain, but its summaries retell the PIN when they were given it, in other words than the message."""

    def handler(request: ObservedRequest) -> ScriptedReply:
        if is_summary_request(request):
            retold = "Ann's bank PIN is 4711. " if "PIN" in request.messages[-1]["content"] else ""
            return ScriptedReply(text=f"{retold}Ann talked about the weather.")
        return brain(request)

    return handler


@pytest.fixture
async def app(llm: ScriptedLLMServer, brain: Brain, key_prefix: str, data_dir: Path):  # type: ignore[no-untyped-def]
    llm.set_handler(retelling(brain))
    settings = settings_for(
        llm, "openai", key_prefix, data_dir, MEMBOT_CONTEXT_WINDOW=3000, MEMBOT_MAX_OUTPUT_TOKENS=256
    )
    async with open_app(settings) as running:
        assert running.runtime is not None
        yield running


async def test_forget_removes_the_text_from_every_store_and_the_next_prompt(app: App, llm: ScriptedLLMServer) -> None:
    assert app.runtime is not None
    sink = RecordingSink()
    for text in ("my name is Ann", "my bank PIN is 4711", "remember: Ann's bank PIN is 4711"):
        await app.runtime.handle(slack_said(text, dm=True), sink)
    for turn in range(12):  # enough to evict the PIN into both summaries
        await app.runtime.handle(slack_said(f"turn {turn}: the weather is fine", dm=True), sink)
    await app.runtime.handle(slack_said("again, my bank PIN is 4711 you know", dm=True), sink)  # still queued
    core = app.stores.core
    await core.append(ANN, "human", "Bank PIN: 4711", cause="cli")
    await core.append(ANN, "human", "Likes tea", cause="cli")
    summary = await app.stores.working.summary(ANN)
    assert SECRET in summary, "the summary retells the PIN"
    assert SECRET in json.dumps([m.to_json() for m in await app.stores.working.messages(ANN)])

    candidates = await app.admin.forget_candidates(ANN, "bank PIN")
    assert {c.store for c in candidates} == {"core:human", "recall", "archival"}
    assert await app.admin.forget(ANN, candidates, cause="user:slack:U1") >= 4

    exported = await app.admin.export(ANN)
    holding = {part: value for part, value in exported.items() if SECRET in json.dumps(value, ensure_ascii=False)}
    assert not holding, f"export parts still holding the text (core, versions, queue, summaries, ...): {holding}"
    assert FORGOTTEN in await app.stores.working.summary(ANN)
    assert "weather" in await app.stores.working.summary(ANN), "the rest of the summary is kept"
    human = {b.label: b.value for b in await core.blocks(ANN)}["human"]
    assert human.endswith("\nLikes tea") and "Name: Ann" in human
    for scope in (Scope.PRIVATE, Scope.PUBLIC):
        for hit in (await app.stores.recall.search(ANN, "bank PIN 4711", 0, scope)).hits:
            assert SECRET not in hit.text
        assert not (await app.stores.archival.search(ANN, "bank PIN 4711", 0, scope)).hits
    [forget] = [i for i in await app.repair.history(ANN, limit=5) if i.entry.kind == "forget"]
    assert forget.entry.detail["removed"]["core_lines"] == 1 and SECRET not in str(forget.as_dict())

    before = len(llm.requests)
    await app.runtime.handle(slack_said("what is my name?", dm=True), sink)
    assert not any(SECRET in json.dumps(r.messages) + r.system for r in llm.requests[before:])
    for version in await core.versions(ANN):
        assert SECRET not in json.dumps(dict(version.blocks))


async def test_forget_removes_whole_core_lines_only(app: App) -> None:
    core = app.stores.core
    await core.ensure(ANN, {"human": "Likes tea\nLikes tea and cake"}, cause="cli")
    assert await core.remove_lines(ANN, "human", ["Likes tea"], cause="cli") == 1
    assert {b.label: b.value for b in await core.blocks(ANN)}["human"] == "Likes tea and cake"
    assert await core.remove_lines(ANN, "human", ["tea"], cause="cli") == 0  # a part of a line is not a line


def test_redaction_takes_the_sentences_about_the_query_or_the_forgotten_texts() -> None:
    redact = Redactor("bank PIN", ["my code is 4711"])
    assert redact("Hi! My bank PIN is 4711. Nice weather.") == f"Hi! {FORGOTTEN} Nice weather."
    assert redact("Ann: my code is 4711\nAnn likes tea.") == f"{FORGOTTEN}\nAnn likes tea."
    assert redact("The PIN for the bank card was mentioned.") == FORGOTTEN  # every word of the query
    assert redact("Ann likes tea.") == "Ann likes tea."
    quoted = json.dumps({"message": "Found:\n- my code is 4711\n- likes tea"})
    assert "4711" not in redact(quoted) and "likes tea" in redact(quoted)
