"""Archival memory on embedded Qdrant: duplicate checks, search, privacy, isolation, export/erase."""

from __future__ import annotations

import pytest

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import ArchivalEntry, MemoryEditError
from memory.qdrant.archival import QdrantArchivalMemory, text_hash
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.store import QdrantStore
from tests.memory.helpers import ALICE, BOB, T0


def note(text: str, agent: AgentKey = ALICE, scope: Scope = Scope.PRIVATE) -> ArchivalEntry:
    return ArchivalEntry(agent=agent, text=text, timestamp=T0, scope=scope)


async def test_insert_and_search(archival: QdrantArchivalMemory) -> None:
    stored = await archival.insert(note("Alice's dog Biscuit is a golden retriever"))
    assert stored.stored and stored.duplicate_text is None
    await archival.insert(note("Alice works night shifts as a nurse"))
    await archival.insert(note("Alice is learning Portuguese"))
    page = await archival.search(ALICE, "night shifts", 0, Scope.PRIVATE)
    assert page.hits[0].text == "Alice works night shifts as a nurse"
    assert page.total == 3
    assert page.hits[0].role is None
    assert await archival.count(ALICE) == 3
    with pytest.raises(MemoryEditError, match="archival_memory_search failed"):
        await archival.search(ALICE, "", 0, Scope.PRIVATE)


async def test_exact_duplicate_is_reported_not_stored(archival: QdrantArchivalMemory) -> None:
    first = await archival.insert(note("Alice's birthday is on May 4."))
    again = await archival.insert(note("  alice's BIRTHDAY is on may 4 "))
    assert not again.stored
    assert again.id == first.id
    assert again.duplicate_text == "Alice's birthday is on May 4."
    assert await archival.count(ALICE) == 1
    assert text_hash("Alice's birthday, May 4!") == text_hash("alices birthday may 4")


async def test_near_duplicate_is_reported(store: QdrantStore, embedder: HashingEmbedder) -> None:
    archival = QdrantArchivalMemory(store.archival, embedder, duplicate_threshold=0.85)
    first = await archival.insert(note("Alice loves hiking in the Alps with her two brothers every summer"))
    near = await archival.insert(note("Alice loves hiking in the Alps with her brothers every summer"))
    assert (near.stored, near.id) == (False, first.id)
    assert near.duplicate_text is not None and "two brothers" in near.duplicate_text
    different = await archival.insert(note("Alice hates hiking"))
    assert different.stored
    assert await archival.count(ALICE) == 2


async def test_empty_insert_fails(archival: QdrantArchivalMemory) -> None:
    with pytest.raises(MemoryEditError, match="content is empty"):
        await archival.insert(note(" \n "))


async def test_agents_are_isolated(archival: QdrantArchivalMemory) -> None:
    await archival.insert(note("Alice's bank is Crédit Agricole"))
    bob = await archival.insert(note("Alice's bank is Crédit Agricole", agent=BOB))
    assert bob.stored  # a duplicate only within the same agent
    await archival.insert(note("Bob collects stamps", agent=BOB))
    assert await archival.erase(BOB) == 2
    await archival.insert(note("Bob collects stamps", agent=BOB))
    page = await archival.search(BOB, "Crédit Agricole bank", 0, Scope.PRIVATE)
    assert [h.text for h in page.hits] == ["Bob collects stamps"]


async def test_public_context_never_sees_private_entries(archival: QdrantArchivalMemory) -> None:
    await archival.insert(note("Alice is pregnant", scope=Scope.PRIVATE))
    await archival.insert(note("Alice runs the book club", scope=Scope.PUBLIC))
    public = await archival.search(ALICE, "is Alice pregnant", 0, Scope.PUBLIC)
    assert [h.text for h in public.hits] == ["Alice runs the book club"]
    private = await archival.search(ALICE, "is Alice pregnant", 0, Scope.PRIVATE)
    assert private.hits[0].text == "Alice is pregnant" and private.total == 2


async def test_duplicate_checks_respect_scope(archival: QdrantArchivalMemory) -> None:
    private = await archival.insert(note("Alice moved to Berlin", scope=Scope.PRIVATE))
    public = await archival.insert(note("Alice moved to Berlin", scope=Scope.PUBLIC))
    assert public.stored and public.id != private.id  # said in public too: now findable from public contexts
    again = await archival.insert(note("Alice moved to Berlin", scope=Scope.PRIVATE))
    assert not again.stored
    assert (await archival.search(ALICE, "Berlin", 0, Scope.PUBLIC)).total == 1


async def test_export_then_erase_leaves_nothing(archival: QdrantArchivalMemory) -> None:
    await archival.insert(note("fact one"))
    await archival.insert(note("fact two", scope=Scope.PUBLIC))
    exported = await archival.export(ALICE)
    assert sorted(item["text"] for item in exported) == ["fact one", "fact two"]
    assert all(item["kind"] == "archival" and item["source"] == "agent" for item in exported)
    assert await archival.erase(ALICE) == 2
    assert await archival.count(ALICE) == 0
    assert await archival.export(ALICE) == []
    assert (await archival.search(ALICE, "fact", 0, Scope.PRIVATE)).total == 0
