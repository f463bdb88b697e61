"""Audit trail, history, rollback, reset, forget and private marks through the real app and the scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.admin.memory import UnknownAgent
from bot.app import App, open_app
from bot.core.events import AgentKey, InboundMessage, Scope
from bot.core.memory_types import AuditKind, MemoryEditError, VersionNotKept
from tests.scenario import RecordingSink, settings_for, slack_said
from tests.standins.llm_server import ScriptedLLMServer

ANN = AgentKey("slack", "T1", "U1")  # one agent for DMs and channels, as on Slack


def said(text: str, *, dm: bool = True, message_id: str | None = None) -> InboundMessage:
    return slack_said(text, dm=dm, message_id=message_id)


@pytest.fixture
async def app(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path):  # type: ignore[no-untyped-def]
    async with open_app(settings_for(llm, "openai", key_prefix, data_dir)) as running:
        assert running.runtime is not None
        yield running


async def talk(app: App, *texts: str, dm: bool = True) -> RecordingSink:
    assert app.runtime is not None
    sink = RecordingSink()
    for text in texts:
        await app.runtime.handle(said(text, dm=dm), sink)
    return sink


async def human(app: App) -> str:
    return {b.label: b.value for b in await app.stores.core.blocks(ANN)}["human"]


async def test_every_write_of_a_turn_is_audited_with_the_message_that_caused_it(app: App) -> None:
    assert app.runtime is not None
    await app.runtime.handle(said("my name is Ann", message_id="m-1"), RecordingSink())
    await app.runtime.handle(said("remember: Ann's cat is Pixel", message_id="m-2"), RecordingSink())
    items = await app.repair.history(ANN)
    assert [(i.entry.kind, i.entry.cause) for i in items] == [
        ("archival_insert", "event:slack:m-2"),
        ("core_append", "event:slack:m-1"),
        ("core_init", "event:slack:m-1"),
    ]
    insert, append, init = items
    assert insert.entry.detail["scope"] == "private" and insert.entry.detail["source"] == "agent"
    assert "Pixel" not in str(insert.as_dict()), "the trail holds ids, not memory text"
    assert append.entry.version == 2
    assert append.change_lines() == ["+ human: [private] Name: Ann"], "learned in a DM: private"
    assert init.entry.version == 1 and any(line.startswith("+ persona:") for line in init.change_lines())
    assert "v2 core_append human" in append.headline and append.headline.endswith("by event:slack:m-1")


async def test_rollback_restores_core_memory_and_is_itself_audited(app: App) -> None:
    await talk(app, "my name is Ann", "my name is Bea")
    assert "Name: Bea" in await human(app)
    result = await app.repair.rollback(ANN, 2, cause="admin:slack:UADMIN")
    assert (result.to, result.version) == (2, 4)
    assert (await human(app)).endswith("\n[private] Name: Ann")
    [latest] = await app.repair.history(ANN, limit=1)
    assert (latest.entry.kind, latest.entry.cause, dict(latest.entry.detail)) == (
        "core_rollback",
        "admin:slack:UADMIN",
        {"to": 2},
    )
    assert latest.change_lines() == ["- human: [private] Name: Bea"]
    with pytest.raises(VersionNotKept, match="versions 1 to 4 are"):
        await app.repair.rollback(ANN, 99, cause="cli")


async def test_reset_keeps_the_trail_and_core_versions_and_erase_keeps_only_its_own_record(app: App) -> None:
    await talk(app, "my name is Ann", "remember: Ann plays the cello")
    removed = await app.admin.reset(ANN, cause="cli")
    assert removed["core"] == 2 and removed["archival"] == 1 and removed["recall"] == 4
    assert not await app.stores.core.exists(ANN) and await app.stores.archival.count(ANN) == 0
    [reset, *older] = await app.repair.history(ANN)
    assert reset.entry.kind == AuditKind.RESET and reset.entry.detail["removed"]["archival"] == 1
    assert "- human: [private] Name: Ann" in reset.change_lines() and len(older) == 3
    await app.repair.rollback(ANN, 2, cause="cli")  # an admin brings core memory back after a mistaken reset
    assert (await human(app)).endswith("\n[private] Name: Ann")
    erased = await app.admin.erase(ANN, cause="user:slack:U1")
    assert erased["audit_entries"] == 5
    [only] = await app.repair.history(ANN)
    assert (only.entry.kind, only.entry.cause) == ("erase", "user:slack:U1")
    assert await app.stores.core.versions(ANN) == [] and await app.stores.core.version(ANN) == 0


async def test_forget_deletes_everywhere_and_leaves_no_copy_for_a_rollback(app: App) -> None:
    await talk(app, "my name is Ann", "remember: Ann's passport is X123")
    candidates = await app.admin.forget_candidates(ANN, "Ann")
    assert {c.store for c in candidates} == {"core:human", "recall", "archival"}
    await app.admin.forget(ANN, candidates, cause="user:slack:U1")
    assert all("Name: Ann" not in "".join(v.blocks.values()) for v in await app.stores.core.versions(ANN))
    kinds = [i.entry.kind for i in await app.repair.history(ANN, limit=5)]
    assert kinds == ["forget", "archival_delete", "recall_delete", "core_scrub", "core_replace"]
    await app.repair.rollback(ANN, 2, cause="cli")
    assert "Name: Ann" not in await human(app)


async def test_private_lines_stay_out_of_public_turns_views_and_admin_history(app: App, llm: ScriptedLLMServer) -> None:
    await talk(app, "my name is Ann", dm=False)  # learned in a channel: public
    assert app.stores.core is not None
    await app.stores.core.append(ANN, "human", "Has asthma", cause="event:slack:x", private=True)
    await app.stores.core.append(ANN, "human", "Works at the bakery", cause="event:slack:y")
    marked = await app.repair.mark(ANN, "bakery", True, cause="user:slack:U1")
    assert marked.lines == [("human", "Works at the bakery")]
    assert (await app.repair.mark(ANN, "asthma", False, cause="user:slack:U1", scope=Scope.PUBLIC)).lines == [], (
        "a private line is invisible from a channel, so it cannot be unmarked (and shown) there"
    )

    await talk(app, "what is my name?", dm=False)
    public_prompt = llm.requests[-1].system
    assert "Name: Ann" in public_prompt
    assert "asthma" not in public_prompt and "bakery" not in public_prompt
    await talk(app, "what is my name?", dm=True)
    assert "[private] Has asthma" in llm.requests[-1].system

    view = await app.admin.show(ANN, Scope.PUBLIC)
    assert view.hidden == 2 and view.summary == ""
    assert "asthma" not in str(view.as_dict()) and "bakery" not in str(view.as_dict())
    public_history = await app.repair.history(ANN, scope=Scope.PUBLIC)
    assert "asthma" not in str([i.change_lines() for i in public_history])
    assert any("private line(s) not shown" in line for i in public_history for line in i.change_lines())
    assert "asthma" in str([i.change_lines() for i in await app.repair.history(ANN)])


async def test_import_is_audited_with_the_stored_passage_ids(app: App) -> None:
    report = await app.admin.import_document(ANN, "notes.md", b"Ann's garden has roses.", Scope.PRIVATE, cause="cli")
    assert report.stored == 1
    [entry] = [i.entry for i in await app.repair.history(ANN)]
    assert entry.kind == "import" and entry.detail["source"] == "notes.md" and len(entry.detail["ids"]) == 1


async def test_marking_a_line_private_in_a_full_block_says_why_it_failed(app: App) -> None:
    await talk(app, "my name is Ann", dm=False)
    block = {b.label: b for b in await app.stores.core.blocks(ANN)}["human"]
    await app.stores.core.set_limit(ANN, "human", block.chars + 3)
    with pytest.raises(MemoryEditError, match=r"'human' is too full to mark more lines private .* 0 line"):
        await app.repair.mark(ANN, "Name", True, cause="user:slack:U1")
    assert "[private]" not in await human(app)


async def test_what_a_reset_keeps_is_still_exported_and_erased(app: App) -> None:
    await talk(app, "my name is Ann")
    await app.admin.reset(ANN, cause="cli")
    with pytest.raises(UnknownAgent):
        await app.admin.show(ANN)
    exported = await app.admin.export(ANN)
    assert any(item["kind"] == "core_version" and "Name: Ann" in str(item) for item in exported["core"])
    assert exported["audit"][-1]["kind"] == "reset"
    await app.admin.erase(ANN, cause="user:slack:U1")
    assert await app.stores.core.versions(ANN) == []
    assert [e.kind for e in await app.stores.audit.history(ANN, 10)] == ["erase"]
