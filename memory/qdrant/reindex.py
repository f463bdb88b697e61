"""Rebuild the search vectors of existing collections in place after ``INDEX_VERSION`` changed.

Payloads (what was said, by whom, when) are the source of truth; the dense and sparse vectors are derived from
them, so they can always be rebuilt: recall messages channel by channel in time order (for the previous-message
context), archival notes one by one. Point ids and payloads are not touched. Run by ``membot memory reindex``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from bot.core.ports import Embedder
from memory.qdrant.indexing import contextualize, dense_text, sparse_text
from memory.qdrant.search import from_rfc3339, scroll_all, to_sparse
from memory.qdrant.sparse import document_vector
from memory.qdrant.store import DENSE, INDEX_VERSION, SPARSE, CollectionNames

BATCH = 128
Progress = Callable[[str, int, int], None]  # collection, done, total


async def index_version(client: AsyncQdrantClient, collection: str) -> int:
    metadata = (await client.get_collection(collection)).config.metadata or {}
    return int(metadata.get("index_version", 1))


async def _update(client: AsyncQdrantClient, collection: str, points: list[models.PointVectors]) -> None:
    if points:
        await client.update_vectors(collection, points=points, wait=True)


async def reindex_recall(
    client: AsyncQdrantClient, collection: str, embedder: Embedder, progress: Progress | None = None
) -> int:
    """Re-embed every recall message; return how many."""
    records = await scroll_all(client, collection, models.Filter())
    channels: dict[tuple[str, str], list[models.Record]] = defaultdict(list)
    for record in records:
        payload = record.payload or {}
        channels[(str(payload.get("agent")), str(payload.get("channel")))].append(record)
    done = 0
    for group in channels.values():
        group.sort(key=lambda r: str((r.payload or {}).get("timestamp", "")))
        payloads = [r.payload or {} for r in group]
        own = await _embed(embedder, [dense_text(p.get("author"), str(p.get("text", ""))) for p in payloads])
        vectors = contextualize(own, [from_rfc3339(str(p["timestamp"])) for p in payloads])
        for start in range(0, len(group), BATCH):
            chunk = range(start, min(start + BATCH, len(group)))
            points = [_vectors(group[i], vectors[i], _recall_sparse(payloads[i])) for i in chunk]
            await _update(client, collection, points)
            done += len(chunk)
            if progress:
                progress(collection, done, len(records))
    return done


def _recall_sparse(payload: dict[str, Any]) -> str:
    return sparse_text(payload.get("author"), str(payload.get("text", "")), payload.get("attachment_text"))


async def reindex_archival(
    client: AsyncQdrantClient, collection: str, embedder: Embedder, progress: Progress | None = None
) -> int:
    """Re-embed every archival note; return how many."""
    records = await scroll_all(client, collection, models.Filter())
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        texts = [str((r.payload or {}).get("text", "")) for r in chunk]
        dense = await embedder.embed(texts)
        await _update(client, collection, [_vectors(r, d, t) for r, d, t in zip(chunk, dense, texts, strict=True)])
        if progress:
            progress(collection, start + len(chunk), len(records))
    return len(records)


async def _embed(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        vectors.extend(await embedder.embed(texts[start : start + BATCH]))
    return vectors


def _vectors(record: models.Record, dense: list[float], sparse_source: str) -> models.PointVectors:
    return models.PointVectors(id=record.id, vector={DENSE: dense, SPARSE: to_sparse(document_vector(sparse_source))})


async def reindex(
    client: AsyncQdrantClient, names: CollectionNames, embedder: Embedder, progress: Progress | None = None
) -> dict[str, int]:
    """Reindex each collection below ``INDEX_VERSION`` and stamp it; return points reindexed per collection."""
    done: dict[str, int] = {}
    for collection, rebuild in ((names.recall, reindex_recall), (names.archival, reindex_archival)):
        if not await client.collection_exists(collection) or await index_version(client, collection) >= INDEX_VERSION:
            continue
        done[collection] = await rebuild(client, collection, embedder, progress)
        metadata = (await client.get_collection(collection)).config.metadata or {}
        await client.update_collection(collection, metadata={**metadata, "index_version": INDEX_VERSION})
    return done
