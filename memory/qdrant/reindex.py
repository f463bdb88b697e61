"""Rebuild the search vectors of existing collections in place after ``INDEX_VERSION`` changed.

Payloads (what was said, by whom, when) are the source of truth; the dense and sparse vectors are derived from
them, so they can always be rebuilt: recall messages channel by channel in time order (for the previous-message
context), archival notes one by one. Point ids and payloads are not touched. Run by ``membot memory reindex``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from bot.core.ports import Embedder
from memory.qdrant.backend import StoredPoint, VectorBackend, VectorCollection, VectorPoint
from memory.qdrant.indexing import contextualize, dense_text, sparse_text
from memory.qdrant.search import from_rfc3339, scroll_all
from memory.qdrant.sparse import document_vector
from memory.qdrant.store import INDEX_VERSION, CollectionNames

BATCH = 128
Progress = Callable[[str, int, int], None]  # collection, done, total


async def index_version(collection: VectorCollection) -> int:
    return int((await collection.info()).metadata.get("index_version", 1))


async def reindex_recall(collection: VectorCollection, embedder: Embedder, progress: Progress | None = None) -> int:
    """Re-embed every recall message; return how many."""
    records = await scroll_all(collection, ())
    channels: dict[tuple[str, str], list[StoredPoint]] = defaultdict(list)
    for record in records:
        payload = record.payload
        channels[(str(payload.get("agent")), str(payload.get("channel")))].append(record)
    done = 0
    for group in channels.values():
        group.sort(key=lambda r: str(r.payload.get("timestamp", "")))
        payloads = [r.payload for r in group]
        own = await _embed(embedder, [dense_text(p.get("author"), str(p.get("text", ""))) for p in payloads])
        vectors = contextualize(own, [from_rfc3339(str(p["timestamp"])) for p in payloads])
        for start in range(0, len(group), BATCH):
            chunk = range(start, min(start + BATCH, len(group)))
            points = [_vectors(group[i], vectors[i], _recall_sparse(payloads[i])) for i in chunk]
            await collection.update_vectors(points)
            done += len(chunk)
            if progress:
                progress(collection.name, done, len(records))
    return done


def _recall_sparse(payload: dict[str, Any]) -> str:
    return sparse_text(payload.get("author"), str(payload.get("text", "")), payload.get("attachment_text"))


async def reindex_archival(collection: VectorCollection, embedder: Embedder, progress: Progress | None = None) -> int:
    """Re-embed every archival note; return how many."""
    records = await scroll_all(collection, ())
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        texts = [str(r.payload.get("text", "")) for r in chunk]
        dense = await embedder.embed(texts)
        await collection.update_vectors([_vectors(r, d, t) for r, d, t in zip(chunk, dense, texts, strict=True)])
        if progress:
            progress(collection.name, start + len(chunk), len(records))
    return len(records)


async def _embed(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        vectors.extend(await embedder.embed(texts[start : start + BATCH]))
    return vectors


def _vectors(record: StoredPoint, dense: list[float], sparse_source: str) -> VectorPoint:
    return VectorPoint(record.id, dense, document_vector(sparse_source))


async def reindex(
    backend: VectorBackend, names: CollectionNames, embedder: Embedder, progress: Progress | None = None
) -> dict[str, int]:
    """Reindex each collection below ``INDEX_VERSION`` and stamp it; return points reindexed per collection."""
    done: dict[str, int] = {}
    for name, rebuild in ((names.recall, reindex_recall), (names.archival, reindex_archival)):
        if not await backend.exists(name):
            continue
        collection = await backend.collection(name)
        if await index_version(collection) >= INDEX_VERSION:
            continue
        done[name] = await rebuild(collection, embedder, progress)
        metadata = (await collection.info()).metadata
        await collection.set_metadata({**metadata, "index_version": INDEX_VERSION})
    return done
