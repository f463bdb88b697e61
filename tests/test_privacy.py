"""Privacy scopes end to end: what is learned in a DM never comes back from a search made while answering in a public
channel (recall by meaning, by date, with a date in the query; archival), on an agent shared by DMs and channels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import App, open_app
from bot.events import AgentKey
from memory.dates import query_window
from tests.scenario import RecordingSink, settings_for, slack_said
from tests.standins.llm_server import ScriptedLLMServer, ScriptedReply

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
