"""Recall memory on embedded Qdrant (hashing embedder: retrieval quality is not under test here)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.events import Scope
from bot.core.memory_types import MemoryEditError
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.store import QdrantStore
from tests.memory.helpers import ALICE, BOB, T0, recall_entry


async def test_add_then_search_finds_by_words(recall: QdrantRecallMemory) -> None:
    await recall.add(
        [
            recall_entry(ALICE, "I adopted a golden retriever named Biscuit", 0),
            recall_entry(ALICE, "What a lovely name for a dog!", 1, role="assistant"),
            recall_entry(ALICE, "My sister lives in Lyon", 2),
            recall_entry(ALICE, "The weather is grey today", 3),
        ]
    )
    page = await recall.search(ALICE, "where does my sister live", 0, Scope.PRIVATE)
    assert page.hits[0].text == "My sister lives in Lyon"
    assert page.hits[0].role == "user" and page.hits[0].author == "alice"
    assert page.hits[0].timestamp == T0 + timedelta(minutes=2)
    assert page.page == 0 and page.total == 4
    page = await recall.search(ALICE, "Biscuit", 0, Scope.PRIVATE)
    assert page.hits[0].text.endswith("named Biscuit")
    assert await recall.count(ALICE) == 4


async def test_search_pages_of_five(recall: QdrantRecallMemory) -> None:
    await recall.add([recall_entry(ALICE, f"note number {i} about tea", i) for i in range(12)])
    pages = [await recall.search(ALICE, "tea", p, Scope.PRIVATE) for p in range(4)]
    assert [len(p.hits) for p in pages] == [5, 5, 2, 0]
    assert all(p.total == 12 and p.pages == 3 for p in pages)
    ids = [h.id for p in pages for h in p.hits]
    assert len(set(ids)) == 12
    with pytest.raises(MemoryEditError, match="numbered from 0"):
        await recall.search(ALICE, "tea", -1, Scope.PRIVATE)
    with pytest.raises(MemoryEditError, match="query is empty"):
        await recall.search(ALICE, "  ", 0, Scope.PRIVATE)


async def test_total_is_capped(recall: QdrantRecallMemory, store: QdrantStore, embedder: HashingEmbedder) -> None:
    small = QdrantRecallMemory(store.recall, embedder, max_results=7)
    await recall.add([recall_entry(ALICE, f"message {i}", i) for i in range(9)])
    page = await small.search(ALICE, "message", 1, Scope.PRIVATE)
    assert page.total == 7 and len(page.hits) == 2


async def test_add_is_idempotent(recall: QdrantRecallMemory) -> None:
    entries = [
        recall_entry(ALICE, "hello", 0, message_id="m1"),
        recall_entry(ALICE, "hi there", 0, role="assistant", message_id="m1"),
        recall_entry(ALICE, "no id", 1),
    ]
    await recall.add(entries)
    await recall.add(entries)  # a retried write
    await recall.add([recall_entry(ALICE, "   ", 2)])  # blank: skipped
    assert await recall.count(ALICE) == 3


async def test_search_date_orders_by_time_and_pages(recall: QdrantRecallMemory) -> None:
    # added out of order, on purpose
    await recall.add([recall_entry(ALICE, f"minute {m}", m) for m in (30, 5, 20, 0, 10, 15, 25, 35, 40)])
    start, end = T0 + timedelta(minutes=5), T0 + timedelta(minutes=35)
    first = await recall.search_date(ALICE, start, end, 0, Scope.PRIVATE)
    second = await recall.search_date(ALICE, start, end, 1, Scope.PRIVATE)
    assert [h.text for h in first.hits] == ["minute 5", "minute 10", "minute 15", "minute 20", "minute 25"]
    assert [h.text for h in second.hits] == ["minute 30", "minute 35"]  # both bounds inclusive
    assert first.total == second.total == 7
    assert (await recall.search_date(ALICE, start, end, 2, Scope.PRIVATE)).hits == ()
    reversed_range = await recall.search_date(ALICE, end, start, 0, Scope.PRIVATE)
    assert [h.text for h in reversed_range.hits] == [h.text for h in first.hits]
    naive = await recall.search_date(
        ALICE, start.replace(tzinfo=None), end.replace(tzinfo=None), 0, Scope.PRIVATE
    )  # naive datetimes are UTC
    assert naive.total == 7


async def test_agents_are_isolated(recall: QdrantRecallMemory) -> None:
    await recall.add([recall_entry(ALICE, "my password hint is pineapple", 0)])
    await recall.add([recall_entry(BOB, "I play chess", 0)])
    page = await recall.search(BOB, "pineapple password hint", 0, Scope.PRIVATE)
    assert [h.text for h in page.hits] == ["I play chess"]
    dated = await recall.search_date(BOB, T0 - timedelta(days=1), T0 + timedelta(days=1), 0, Scope.PRIVATE)
    assert [h.text for h in dated.hits] == ["I play chess"]
    assert await recall.count(ALICE) == 1 and await recall.count(BOB) == 1


async def test_public_context_never_sees_private_messages(recall: QdrantRecallMemory) -> None:
    await recall.add(
        [
            recall_entry(ALICE, "private: my diagnosis is asthma", 0),
            recall_entry(ALICE, "public: I like asthma-friendly hikes", 1, scope=Scope.PUBLIC),
        ]
    )
    public = await recall.search(ALICE, "asthma diagnosis", 0, Scope.PUBLIC)
    assert [h.text for h in public.hits] == ["public: I like asthma-friendly hikes"]
    assert public.total == 1
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert (await recall.search_date(ALICE, *window, 0, Scope.PUBLIC)).total == 1
    assert (await recall.search(ALICE, "asthma diagnosis", 0, Scope.PRIVATE)).total == 2


async def test_export_then_erase_leaves_nothing(recall: QdrantRecallMemory) -> None:
    await recall.add([recall_entry(ALICE, f"a{i}", 5 - i, message_id=f"m{i}") for i in range(3)])
    await recall.add([recall_entry(BOB, "b0", 0)])
    exported = await recall.export(ALICE)
    assert [item["text"] for item in exported] == ["a2", "a1", "a0"]  # oldest first
    assert exported[0]["kind"] == "recall" and exported[0]["message_id"] == "m2"
    assert exported[0]["timestamp"] == "2024-03-01T09:03:00.000000Z"
    assert {"agent", "platform", "channel", "role", "author", "scope", "id"} <= exported[0].keys()
    assert await recall.erase(ALICE) == 3
    assert await recall.count(ALICE) == 0
    assert await recall.export(ALICE) == []
    assert (await recall.search(ALICE, "a0", 0, Scope.PRIVATE)).hits == ()
    assert await recall.erase(ALICE) == 0
    assert await recall.count(BOB) == 1
