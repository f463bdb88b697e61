"""Moving a store of qdrant-client's former local mode into Qdrant Edge, once, when the embedded store opens.

membot before Qdrant Edge kept its embedded store with qdrant-client's local mode in the same directory
(``<data_dir>/qdrant/collection/<name>/storage.sqlite`` and ``meta.json``). On the first start with Edge, each of
membot's collections found there and not yet in Edge is copied as it is: point ids, payloads and both vectors (no
re-embedding), the collection's metadata (embedder, index version). The counts of both sides are compared before
the old files are set aside in ``<data_dir>/qdrant/local-mode-migrated/`` (delete them once you are happy). A copy
that stops half way is started again from scratch on the next start (the Edge collection is only registered, by
its metadata file, once every point is in). ``membot memory migrate`` runs the same with a progress bar.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from qdrant_client import QdrantClient, models

from memory.qdrant.backend import DENSE, SPARSE, VectorPoint
from memory.qdrant.edge_backend import EdgeBackend
from memory.qdrant.sparse import SparseTerms
from memory.qdrant.store import (
    ARCHIVAL_KEYWORDS,
    RECALL_KEYWORDS,
    CollectionNames,
    QdrantSetupError,
    connect_local_sync,
)

BATCH = 512
SET_ASIDE = "local-mode-migrated"
Progress = Callable[[str, int, int], None]  # collection, copied, total

log = logging.getLogger(__name__)


class MigrationError(QdrantSetupError):
    """The copy did not hold every point (the old store is left in place)."""


def local_collections(path: Path, names: CollectionNames) -> list[str]:
    """membot's collections that qdrant-client's local mode keeps in ``path``."""
    return [n for n in (names.recall, names.archival) if (path / "collection" / n).is_dir()]


async def migrate_local_store(
    backend: EdgeBackend, names: CollectionNames, progress: Progress | None = None
) -> dict[str, int]:
    """Copy each local-mode collection not yet in Edge; return points copied per collection ({} when none)."""
    path = Path(backend.location)
    pending = [n for n in local_collections(path, names) if not await backend.exists(n)]
    if not pending:
        return {}
    log.info("migrating the embedded store to Qdrant Edge", extra={"collections": len(pending)})
    client = await asyncio.to_thread(connect_local_sync, path)  # loads every point: seconds per 10k
    copied: dict[str, int] = {}
    try:
        for name in pending:
            keywords = RECALL_KEYWORDS if name == names.recall else ARCHIVAL_KEYWORDS
            copied[name] = await _copy(client, backend, name, keywords, progress)
    finally:
        await asyncio.to_thread(client.close)
    _set_aside(path)
    log.info("migrated the embedded store to Qdrant Edge", extra={"points": sum(copied.values())})
    return copied


async def _copy(
    client: QdrantClient, backend: EdgeBackend, name: str, keywords: tuple[str, ...], progress: Progress | None
) -> int:
    info = await asyncio.to_thread(client.get_collection, name)
    vectors = info.config.params.vectors
    dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
    if dense is None:
        raise MigrationError(f"collection {name!r} in {backend.location} has no dense vectors: not membot's")
    total = (await asyncio.to_thread(client.count, name, exact=True)).count
    await backend.discard(name)  # a copy that stopped half way
    metadata = dict(info.config.metadata or {})
    await backend.create(name, dimensions=dense.size, metadata=metadata, keyword_fields=keywords, register=False)
    target = await backend.collection(name)
    done = 0
    offset: Any = None
    while True:
        records, offset = await asyncio.to_thread(
            client.scroll, name, limit=BATCH, offset=offset, with_payload=True, with_vectors=True
        )
        await target.upsert([_point(r) for r in records])
        done += len(records)
        if progress:
            progress(name, done, total)
        if offset is None:
            break
    stored = await target.count(())
    if stored != total:
        raise MigrationError(f"copying {name!r} to Qdrant Edge kept {stored} of {total} points; the old store is kept")
    backend.register(name, dense.size, metadata)
    return stored


def _point(record: models.Record) -> VectorPoint:
    vector = record.vector if isinstance(record.vector, dict) else {}
    dense = vector.get(DENSE)
    sparse = vector.get(SPARSE)
    terms = SparseTerms(list(sparse.indices), list(sparse.values)) if isinstance(sparse, models.SparseVector) else None
    return VectorPoint(
        str(record.id),
        list(cast(list[float], dense)) if isinstance(dense, list) else [],
        terms or SparseTerms([], []),
        dict(record.payload or {}),
    )


def _set_aside(path: Path) -> None:
    """Move the local-mode files out of the way (kept until the user deletes them)."""
    target = path / SET_ASIDE
    target.mkdir(exist_ok=True)
    for name in ("collection", "meta.json", ".lock"):
        if (path / name).exists():
            shutil.move(str(path / name), str(target / name))
