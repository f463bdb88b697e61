"""Retrieval features of recall search: speaker-aware indexing, previous-message context, dates in queries,
the index version marker and reindexing (hashing embedder: the mechanics, not MiniLM's quality)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.events import Scope
from bot.core.memory_types import ArchivalEntry, RecallEntry
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.dates import TimeWindow, query_window
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.indexing import CONTEXT_GAP, dense_text, sparse_text, with_context
from memory.qdrant.recall import QdrantRecallMemory, recall_point_id
from memory.qdrant.reindex import index_version, reindex
from memory.qdrant.store import INDEX_VERSION, CollectionNames, QdrantSetupError, QdrantStore, ensure_collections
from tests.memory.helpers import ALICE, T0, recall_entry


def said(author: str, text: str, minutes: float, **extra: object) -> RecallEntry:
    entry = recall_entry(ALICE, text, 0, scope=Scope.PUBLIC)
    return replace(entry, author=author, timestamp=T0 + timedelta(minutes=minutes), **extra)  # type: ignore[arg-type]


async def stored_dense(store: QdrantStore, entry: RecallEntry) -> list[float]:
    (record,) = await store.recall.retrieve([recall_point_id(entry)], dense=True)
    assert record.dense is not None
    return record.dense


def close(a: list[float], b: list[float]) -> bool:
    return all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


async def test_indexing_text_never_changes_the_stored_text(recall: QdrantRecallMemory) -> None:
    photo = said("Melanie", "Look at this!", 0, attachment_text="a photo of a sunset over a lake")
    await recall.add([photo])
    page = await recall.search(ALICE, "sunset lake photo", 0, Scope.PRIVATE)
    assert page.hits[0].text == "Look at this!" and page.hits[0].author == "Melanie"
    (exported,) = await recall.export(ALICE)
    assert exported["text"] == "Look at this!"
    assert exported["attachment_text"] == "a photo of a sunset over a lake"
    assert dense_text("Bob", "hi") == 'Bob said, "hi"' and dense_text(None, "hi") == "hi"
    assert sparse_text("Bob", "hi", None) == "Bob hi"


async def test_a_query_naming_a_speaker_finds_their_message(recall: QdrantRecallMemory) -> None:
    await recall.add(
        [
            said("Caroline", "I went to a support group yesterday", 0),
            said("Melanie", "I went to a pottery class yesterday", 5 * 60),
            said("Caroline", "The weather is lovely", 10 * 60),
        ]
    )
    for mode in ("hybrid", "dense", "sparse"):
        memory = QdrantRecallMemory(recall._collection, recall._embedder, mode=mode)
        top = (await memory.search(ALICE, "What did Melanie go to yesterday?", 0, Scope.PRIVATE)).hits[0]
        assert top.author == "Melanie", mode


async def test_previous_message_gives_context_within_the_gap(
    recall: QdrantRecallMemory, store: QdrantStore, embedder: HashingEmbedder
) -> None:
    question = said("membot", "Where does your sister live now?", 0)
    answer = said("alice", "Lyon, since March", 1)
    later = said("alice", "The weather is grey", 1 + CONTEXT_GAP.total_seconds() / 60 + 1)
    await recall.add([question])
    await recall.add([answer])  # one at a time, as the runtime stores messages
    await recall.add([later])
    own = await embedder.embed([dense_text(e.author, e.text) for e in (question, answer, later)])
    assert close(await stored_dense(store, question), own[0])  # first in the channel: its own meaning
    assert close(await stored_dense(store, answer), with_context(own[1], own[0]))
    assert close(await stored_dense(store, later), own[2])  # after a long pause: no context
    dense = QdrantRecallMemory(store.recall, embedder, mode="dense")
    hits = (await dense.search(ALICE, "sister", 0, Scope.PRIVATE)).hits
    assert [h.text for h in hits[:2]] == [question.text, answer.text]

    # a batch gives the same vectors as one-by-one adds, and a fresh process finds the context in the store
    fresh = QdrantRecallMemory(store.recall, embedder)
    await fresh.erase(ALICE)
    await fresh.add([later, answer])
    assert close(await stored_dense(store, answer), own[1])  # its question is gone: no context
    await fresh.add([question])
    await QdrantRecallMemory(store.recall, embedder).add([answer])
    assert close(await stored_dense(store, answer), with_context(own[1], own[0]))


async def test_erased_messages_leave_no_context(
    recall: QdrantRecallMemory, store: QdrantStore, embedder: HashingEmbedder
) -> None:
    secret = said("alice", "my bank pin is 4512", 0)
    await recall.add([secret])
    await recall.delete(ALICE, [recall_point_id(secret)])
    after = said("alice", "hello again", 1)
    await recall.add([after])
    assert close(await stored_dense(store, after), (await embedder.embed([dense_text("alice", "hello again")]))[0])


async def test_a_date_in_the_query_favours_messages_from_then(recall: QdrantRecallMemory) -> None:
    july = datetime(2023, 7, 14, 12, tzinfo=UTC)
    await recall.add(
        [
            replace(recall_entry(ALICE, "we painted a sunset together", 0), timestamp=july - timedelta(days=60)),
            replace(recall_entry(ALICE, "we painted a sunset together!", 0), timestamp=july),
            replace(recall_entry(ALICE, "we painted a sunset together again", 0), timestamp=july + timedelta(days=90)),
        ]
    )
    hits = (await recall.search(ALICE, "What did we paint in July 2023?", 0, Scope.PRIVATE)).hits
    assert hits[0].timestamp == july and len(hits) == 3  # favoured, others still found


def test_query_windows() -> None:
    def day(y: int, m: int, d: int) -> datetime:
        return datetime(y, m, d, tzinfo=UTC)

    assert query_window("What did Gina find on 1 February, 2023?") == TimeWindow(day(2023, 2, 1), day(2023, 2, 2))
    assert query_window("painting shown on October 13th, 2023") == TimeWindow(day(2023, 10, 13), day(2023, 10, 14))
    assert query_window("notes from 2023-05-08") == TimeWindow(day(2023, 5, 8), day(2023, 5, 9))
    assert query_window("what happened in Dec 2023") == TimeWindow(day(2023, 12, 1), day(2024, 1, 1))
    assert query_window("trips in 2022") == TimeWindow(day(2022, 1, 1), day(2023, 1, 1))
    for vague in ("camping in June", "last weekend", "2023 was fun", "room 2023"):
        assert query_window(vague) is None, vague
    assert query_window("on 31 February, 2023") == TimeWindow(day(2023, 2, 1), day(2023, 3, 1))  # no such day
    window = TimeWindow(day(2023, 7, 1), day(2023, 8, 1))
    assert window.widened().end == day(2023, 8, 8)


async def test_old_index_is_refused_until_reindexed(
    store: QdrantStore, recall: QdrantRecallMemory, archival: QdrantArchivalMemory, embedder: HashingEmbedder
) -> None:
    names = CollectionNames(store.recall_collection, store.archival_collection)
    await recall.add([recall_entry(ALICE, "my sister lives in Lyon", 0), recall_entry(ALICE, "ok", 1)])
    await archival.insert(ArchivalEntry(agent=ALICE, text="Alice's sister lives in Lyon", timestamp=T0))
    for collection in (store.recall, store.archival):
        metadata = (await collection.info()).metadata
        await collection.set_metadata({**metadata, "index_version": 1})
    with pytest.raises(QdrantSetupError, match=r"older membot .*membot memory reindex"):
        await ensure_collections(store.backend, names, embedder.dimensions, embedder.name)
    done = await reindex(store.backend, names, embedder)
    assert done == {store.recall_collection: 2, store.archival_collection: 1}
    assert await index_version(store.recall) == INDEX_VERSION
    await ensure_collections(store.backend, names, embedder.dimensions, embedder.name)
    assert await reindex(store.backend, names, embedder) == {}
    assert (await recall.search(ALICE, "where does my sister live", 0, Scope.PRIVATE)).hits[0].text.endswith("Lyon")


async def test_empty_old_collection_is_stamped(store: QdrantStore, embedder: HashingEmbedder) -> None:
    names = CollectionNames(store.recall_collection, store.archival_collection)
    await store.recall.set_metadata({"dimensions": 384, "index_version": 1})
    await ensure_collections(store.backend, names, embedder.dimensions, embedder.name)
    assert await index_version(store.recall) == INDEX_VERSION
    await store.recall.set_metadata({"dimensions": 384, "index_version": 99})
    with pytest.raises(QdrantSetupError, match="newer membot"):
        await ensure_collections(store.backend, names, embedder.dimensions, embedder.name)


async def test_sparse_mode_with_only_stopwords_finds_nothing(store: QdrantStore, embedder: HashingEmbedder) -> None:
    sparse = QdrantRecallMemory(store.recall, embedder, mode="sparse")
    await sparse.add([recall_entry(ALICE, "what is this", 0)])
    assert (await sparse.search(ALICE, "what is", 0, Scope.PRIVATE)).hits == ()
