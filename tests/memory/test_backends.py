"""The same retrieval cases on both backends: Qdrant Edge (embedded) and qdrant-client (the server's API, run on
its local mode here). Hybrid search by words and by meaning, a date named in the query, scopes, date search,
duplicates, deletes, erase, reindex; and both rank the same points the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient

from bot.core.events import Scope
from bot.core.memory_types import ArchivalEntry
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.backend import StoredPoint
from memory.qdrant.client_backend import ClientBackend
from memory.qdrant.edge_backend import EdgeBackend
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.reindex import index_version, reindex
from memory.qdrant.search import SEARCH_MODES, agent_filter, hybrid_query
from memory.qdrant.sparse import query_vector
from memory.qdrant.store import INDEX_VERSION, CollectionNames, QdrantStore, open_backend, open_store
from tests.memory.helpers import ALICE, BOB, T0, recall_entry

NAMES = CollectionNames.with_prefix("membot_test")
BACKENDS = ("edge", "client")
CONVERSATION = [
    "my sister moved to Lyon last spring",
    "I adopted a grey cat called Miso",
    "work has been stressful because of the audit",
    "we played guitar by the river on Sunday",
    "my favourite tea is a smoky lapsang",
    "the dentist appointment is on Friday",
]


async def open_kind(kind: str, directory: Path, embedder: HashingEmbedder) -> QdrantStore:
    if kind == "edge":
        backend = open_backend(path=directory)
        assert isinstance(backend, EdgeBackend)
    else:
        backend = ClientBackend(AsyncQdrantClient(path=str(directory)), str(directory))
    return await open_store(backend, NAMES, embedder.dimensions, embedder.name)


@pytest.fixture(params=BACKENDS)
async def either(
    request: pytest.FixtureRequest, data_dir: Path, embedder: HashingEmbedder
) -> AsyncIterator[QdrantStore]:
    store = await open_kind(request.param, data_dir / request.param, embedder)
    try:
        yield store
    finally:
        await store.close()


async def fill(store: QdrantStore, embedder: HashingEmbedder) -> QdrantRecallMemory:
    recall = QdrantRecallMemory(store.recall, embedder)
    entries = [recall_entry(ALICE, text, i) for i, text in enumerate(CONVERSATION)]
    entries.append(recall_entry(ALICE, "the cat knocked over my tea", 24 * 60, scope=Scope.PUBLIC))
    entries.append(recall_entry(BOB, "my sister lives in Lyon too", 0))
    await recall.add(entries)
    return recall


async def test_hybrid_search_finds_by_words_and_keeps_agents_and_scopes_apart(
    either: QdrantStore, embedder: HashingEmbedder
) -> None:
    recall = await fill(either, embedder)
    assert (await recall.search(ALICE, "where does my sister live? Lyon", 0, Scope.PRIVATE)).hits[0].text == (
        CONVERSATION[0]
    )
    assert (await recall.search(ALICE, "lapsang", 0, Scope.PRIVATE)).hits[0].text == CONVERSATION[4]
    public = await recall.search(ALICE, "cat tea", 0, Scope.PUBLIC)
    assert [h.text for h in public.hits] == ["the cat knocked over my tea"]
    bob = await recall.search(BOB, "sister Lyon", 0, Scope.PRIVATE)
    assert [h.text for h in bob.hits] == ["my sister lives in Lyon too"]
    assert await recall.count(ALICE) == 7 and await recall.count(ALICE, Scope.PUBLIC) == 1


async def test_date_search_and_a_date_named_in_the_query(either: QdrantStore, embedder: HashingEmbedder) -> None:
    recall = QdrantRecallMemory(either.recall, embedder)
    await recall.add(
        [
            recall_entry(ALICE, "we went hiking in the hills", 0),
            recall_entry(ALICE, "we went hiking by the sea", 120 * 24 * 60),
        ]
    )
    later = T0 + timedelta(days=120)
    by_date = await recall.search_date(ALICE, later - timedelta(days=1), later + timedelta(days=1), 0, Scope.PRIVATE)
    assert [h.text for h in by_date.hits] == ["we went hiking by the sea"]
    both = await recall.search_date(ALICE, T0 + timedelta(days=200), T0 - timedelta(days=1), 0, Scope.PRIVATE)
    assert [h.text for h in both.hits] == ["we went hiking in the hills", "we went hiking by the sea"]  # oldest first
    named = await recall.search(ALICE, f"where did we go hiking in {later:%B %Y}?", 0, Scope.PRIVATE)
    assert named.hits[0].text == "we went hiking by the sea"


async def test_archival_duplicates_merge_delete_and_erase(either: QdrantStore, embedder: HashingEmbedder) -> None:
    archival = QdrantArchivalMemory(either.archival, embedder, duplicate_threshold=0.85)
    first = await archival.insert(ArchivalEntry(agent=ALICE, text="Alice's sister lives in Lyon", timestamp=T0))
    again = await archival.insert(ArchivalEntry(agent=ALICE, text="alice's sister lives in lyon!", timestamp=T0))
    assert first.stored and not again.stored and again.id == first.id
    near = await archival.insert(ArchivalEntry(agent=ALICE, text="Alice's sister lives in Lyon now", timestamp=T0))
    assert not near.stored and near.id == first.id  # a dense score over the threshold
    other = await archival.insert(ArchivalEntry(agent=ALICE, text="Alice plays the cello", timestamp=T0))
    assert other.stored
    assert (await archival.search(ALICE, "cello", 0, Scope.PRIVATE)).hits[0].id == other.id
    await archival.merge(ALICE, first.id, [other.id], "Alice's sister lives in Lyon; Alice plays the cello")
    exported = await archival.export(ALICE)
    assert [e["id"] for e in exported] == [first.id] and exported[0]["merged_from"][0]["id"] == other.id
    assert await archival.delete(BOB, [first.id]) == 0  # another agent's id is never touched
    assert await archival.erase(ALICE) == 1 and await archival.count(ALICE) == 0


async def test_recall_delete_erase_and_reindex(either: QdrantStore, embedder: HashingEmbedder) -> None:
    recall = await fill(either, embedder)
    found = await recall.search(ALICE, "grey cat Miso", 0, Scope.PRIVATE)
    assert await recall.delete(ALICE, [found.hits[0].id]) == 1
    assert all("Miso" not in h.text for h in (await recall.search(ALICE, "grey cat Miso", 0, Scope.PRIVATE)).hits)
    await either.recall.set_metadata({**(await either.recall.info()).metadata, "index_version": 1})
    assert await reindex(either.backend, NAMES, embedder) == {NAMES.recall: 7}
    assert await index_version(either.recall) == INDEX_VERSION
    assert (await recall.search(ALICE, "lapsang", 0, Scope.PRIVATE)).hits[0].text == CONVERSATION[4]
    assert await recall.erase(ALICE) == 6 and await recall.count(ALICE) == 0
    assert await recall.count(BOB) == 1


def tiers(points: list[StoredPoint]) -> list[set[str]]:
    """The texts grouped by equal score, best first; the last group is left out (the limit may cut it)."""
    groups: dict[float, set[str]] = {}
    for point in points:
        groups.setdefault(round(point.score, 4), set()).add(str(point.payload["text"]))
    return [groups[score] for score in sorted(groups, reverse=True)][:-1]


async def test_both_backends_score_alike(data_dir: Path, embedder: HashingEmbedder) -> None:
    """Dense (cosine) and sparse (BM25 with IDF) scores agree, so both rank alike (ties may come in any order)."""
    queries = ["sister Lyon", "cat", "tea", "stressful audit at work", "music by the water", "dentist Friday"]
    ranked: dict[str, list[list[set[str]]]] = {}
    first: dict[str, list[str]] = {}
    for kind in BACKENDS:
        store = await open_kind(kind, data_dir / kind, embedder)
        try:
            recall = await fill(store, embedder)
            ranked[kind], first[kind] = [], []
            for query in queries:
                dense = (await embedder.embed([query]))[0]
                where = agent_filter(ALICE, Scope.PRIVATE)
                for mode in SEARCH_MODES[1:]:
                    points = await hybrid_query(
                        store.recall, dense=dense, sparse=query_vector(query), query_filter=where, mode=mode, limit=8
                    )
                    ranked[kind].append(tiers(points))
                first[kind].append((await recall.search(ALICE, query, 0, Scope.PRIVATE)).hits[0].text)
        finally:
            await store.close()
    assert ranked["edge"] == ranked["client"]
    distinct = [0, 3, 5]  # the other queries' best hits tie (two tea messages, a query of unseen words)
    assert [first["edge"][i] for i in distinct] == [first["client"][i] for i in distinct]


async def test_ids_that_are_not_point_ids_find_nothing(either: QdrantStore, embedder: HashingEmbedder) -> None:
    recall = await fill(either, embedder)
    assert await either.recall.retrieve(["not-an-id", "42"]) == []
    assert await recall.delete(ALICE, ["not-an-id"]) == 0 and await recall.count(ALICE) == 7
