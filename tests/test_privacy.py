"""Privacy scopes end to end: what is learned in a DM never comes back from a search made while answering in a public
channel (recall by meaning, by date, with a date in the query; archival), and never reaches a channel turn's prompt
through the conversation window or its summary, on an agent shared by DMs and channels."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import App, open_app
from bot.core.events import AgentKey, Scope
from memory.qdrant.dates import query_window
from tests.scenario import RecordingSink, settings_for, slack_said
from tests.standins.brain import is_summary_request
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer, ScriptedReply

ANN = AgentKey("slack", "T1", "U1")
SECRETS = ("Dr. Quill", "asthma")


said = slack_said


@pytest.fixture
async def app(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path):  # type: ignore[no-untyped-def]
    async with open_app(settings_for(llm, "openai", key_prefix, data_dir)) as running:
        assert running.runtime is not None
        sink = RecordingSink()
        for text, dm in (
            ("My therapist is Dr. Quill, I see her on Tuesdays", True),
            ("remember: Ann was diagnosed with asthma", True),
            ("I run the book club on Tuesdays", False),
            ("remember: Ann runs the Tuesday book club", False),
        ):
            await running.runtime.handle(said(text, dm=dm), sink)
        yield running


async def tool_result(app: App, llm: ScriptedLLMServer, text: str, *, dm: bool) -> str:
    """Ask in a DM or a channel; return what the search function gave the model (the last tool result)."""
    assert app.runtime is not None
    before = len(llm.requests)
    await app.runtime.handle(said(text, dm=dm), RecordingSink())
    results = [m["content"] for r in llm.requests[before:] for m in r.messages[-1:] if m["role"] == "tool"]
    assert results, "the model called a function"
    return results[-1]


@pytest.mark.parametrize(
    "question",
    [
        "search: Tuesdays therapist Quill",  # conversation_search
        "recall: diagnosis asthma book club",  # archival_memory_search
        f"search: therapist Quill Tuesdays on {datetime.now(UTC):%d %B %Y}",  # a date adds a time-window search
    ],
)
async def test_a_search_from_a_channel_never_returns_what_was_learned_in_a_dm(
    app: App, llm: ScriptedLLMServer, question: str
) -> None:
    if " on " in question:
        assert query_window(question) is not None
    public = await tool_result(app, llm, question, dm=False)
    assert "book club" in public, "public entries are found"
    assert not any(secret in public for secret in SECRETS), public
    private = await tool_result(app, llm, question, dm=True)
    assert any(secret in private for secret in SECRETS), f"the same search in a DM finds them: {private}"


async def test_a_date_search_from_a_channel_lists_only_public_messages(app: App, llm: ScriptedLLMServer) -> None:
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    call = ("conversation_search_date", {"start_date": today, "end_date": today, "request_heartbeat": True})
    llm.push(ScriptedReply(tool_calls=[call]))
    public = await tool_result(app, llm, "what did I say today?", dm=False)
    assert "I run the book club" in public and "Quill" not in public
    llm.push(ScriptedReply(tool_calls=[call]))
    private = await tool_result(app, llm, "what did I say today?", dm=True)
    assert "Quill" in private


async def test_a_public_turn_is_told_only_public_counts(app: App, llm: ScriptedLLMServer) -> None:
    assert app.runtime is not None
    await app.runtime.handle(said("hello", dm=False), RecordingSink())
    assert "1 notes in archival memory" in llm.requests[-1].system
    await app.runtime.handle(said("hello", dm=True), RecordingSink())
    assert "2 notes in archival memory" in llm.requests[-1].system


def request_text(request: ObservedRequest) -> str:
    return request.system + "\n".join(str(m.get("content")) for m in request.messages)


async def test_a_channel_turn_does_not_see_the_dm_conversation(app: App, llm: ScriptedLLMServer) -> None:
    """On Slack one agent serves Ann's DMs and channels; the recent DM messages stay out of a channel's prompt."""
    assert app.runtime is not None
    await app.runtime.handle(said("hello everyone", dm=False), RecordingSink())
    channel = request_text(llm.requests[-1])
    assert "book club" in channel, "the public conversation is there"
    assert not any(secret in channel for secret in SECRETS), channel
    await app.runtime.handle(said("hello again", dm=True), RecordingSink())
    assert "Dr. Quill" in request_text(llm.requests[-1]), "a DM turn sees the whole conversation"


async def test_a_channel_turn_gets_a_summary_of_public_messages_only(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(
        llm, "openai", key_prefix, data_dir, MEMBOT_CONTEXT_WINDOW=3000, MEMBOT_MAX_OUTPUT_TOKENS=256
    )
    async with open_app(settings) as app:
        assert app.runtime is not None
        sink = RecordingSink()
        for turn in range(1, 41):  # DM turns 101-140 mention the secret; channel turns 201-240 do not
            await app.runtime.handle(said(f"turn {100 + turn}: about Dr. Quill and my asthma", dm=True), sink)
            await app.runtime.handle(said(f"turn {200 + turn}: the weather is fine", dm=False), sink)
        private = await app.stores.working.summary(ANN)
        public = await app.stores.working.summary(ANN, Scope.PUBLIC)
        # the stand-in's summaries name the turns they were given
        assert any(n.startswith("1") for n in re.findall(r"\d{3}", private)), "the full summary covers DM turns"
        assert public and all(n.startswith("2") for n in re.findall(r"\d{3}", public)), public
        summaries = [request_text(r) for r in llm.requests if is_summary_request(r)]
        assert any("Quill" in text for text in summaries) and any("Quill" not in text for text in summaries)
        await app.runtime.handle(said("what's new?", dm=False), sink)
        channel = request_text(llm.requests[-1])
        assert public in channel and private not in channel
        assert not any(secret in channel for secret in SECRETS)
