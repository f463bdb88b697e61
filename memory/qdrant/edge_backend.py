"""The embedded backend: Qdrant Edge (``qdrant-edge-py``), Qdrant's engine in this process.

One Edge shard per collection, in ``<path>/edge/<collection>/``, with its metadata beside it in
``<path>/edge/<collection>.json`` (Edge shards carry no metadata of their own). Edge has HNSW and payload indexes
(``agent`` as tenant, ``timestamp``, the keyword fields), sparse vectors with the IDF modifier, prefetch with RRF
and a write-ahead log: an update is durable when it returns, segments are flushed on close.

Every call runs in this backend's worker threads, never on the event loop: Edge releases the GIL while it
searches and writes, and its shards are safe to use from several threads at once (reads run during writes). A
lock file (``<path>/edge.lock``) keeps a second process, or a second open in this one, out with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import portalocker
import qdrant_edge as edge

from memory.qdrant.backend import (
    DENSE,
    RRF_K,
    SPARSE,
    CollectionInfo,
    HasIds,
    Match,
    Order,
    Payload,
    StoredPoint,
    TimeRange,
    VectorPoint,
    VectorSearch,
    Where,
    to_rfc3339,
)
from memory.qdrant.sparse import SparseTerms

THREAD_PREFIX = "qdrant-edge"
MIN_FREE_BYTES = 64 * 2**20  # Edge grows memory-mapped files: on a full disk that is SIGBUS, not an error
WORKERS = 2  # searches run beside the indexer's upserts; more would only compete for this machine's cores
T = TypeVar("T")


def check_space(path: Path) -> None:
    """Raise ``OSError(ENOSPC)`` when the file system of ``path`` has less than ``MIN_FREE_BYTES`` free."""
    stats = os.statvfs(path)
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        raise OSError(errno.ENOSPC, "No space left on device (kept free for Qdrant Edge)", str(path))


class EdgeLocked(RuntimeError):
    """The Edge directory is open in another process (or already in this one)."""


def to_filter(where: Where) -> edge.Filter | None:
    """Edge's filter for ``where`` (None for every point)."""
    if not where:
        return None
    must: list[Any] = []
    for condition in where:
        if isinstance(condition, Match):
            must.append(edge.FieldCondition(condition.key, match=edge.MatchValue(condition.value)))
        elif isinstance(condition, TimeRange):
            window = edge.RangeDateTime(gte=to_rfc3339(condition.start), lte=to_rfc3339(condition.end))
            must.append(edge.FieldCondition("timestamp", range=window))
        elif isinstance(condition, HasIds):
            must.append(edge.HasIdCondition(set(_uuids(condition.ids))))
    return edge.Filter(must=must)


def _uuids(ids: Sequence[str]) -> list[uuid.UUID]:
    """The ids as UUIDs (membot's point ids all are); one that is not cannot name a point and is left out."""
    found = []
    for each in ids:
        try:
            found.append(uuid.UUID(each))
        except ValueError:
            continue
    return found


def _sparse(terms: SparseTerms) -> edge.SparseVector:
    return edge.SparseVector(terms.indices, terms.values)


def _vectors(point: VectorPoint) -> dict[str, Any]:
    return {DENSE: point.dense, SPARSE: _sparse(point.sparse)}


def _with_payload(payload: Payload) -> bool | list[str]:
    return payload if isinstance(payload, bool) else list(payload)


def _stored(record: edge.Record | edge.ScoredPoint, dense: bool = False) -> StoredPoint:
    vector = record.vector if dense and isinstance(record.vector, dict) else None
    found = vector.get(DENSE) if vector else None
    return StoredPoint(
        id=str(record.id),
        payload=dict(record.payload or {}),
        dense=list(cast(list[float], found)) if isinstance(found, list) else None,
        score=float(getattr(record, "score", 0.0) or 0.0),
    )


class EdgeCollection:
    """One Edge shard (``VectorCollection``)."""

    def __init__(self, backend: EdgeBackend, name: str, shard: edge.EdgeShard) -> None:
        self._backend = backend
        self._name = name
        self.shard = shard  # the raw shard: for whole-store scans in tests and for migration

    @property
    def name(self) -> str:
        return self._name

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        if points:
            ops = [edge.Point(uuid.UUID(p.id), _vectors(p), p.payload) for p in points]
            await self._backend.write(self.shard.update, edge.UpdateOperation.upsert_points(ops))

    async def update_vectors(self, points: Sequence[VectorPoint]) -> None:
        if points:
            ops = [edge.PointVectors(uuid.UUID(p.id), _vectors(p)) for p in points]
            await self._backend.write(self.shard.update, edge.UpdateOperation.update_vectors(ops))

    async def retrieve(self, ids: Sequence[str], *, payload: Payload = True, dense: bool = False) -> list[StoredPoint]:
        wanted = _uuids(ids)
        if not wanted:
            return []
        records = await self._backend.run(
            self.shard.retrieve, wanted, _with_payload(payload), [DENSE] if dense else False
        )
        return [_stored(r, dense) for r in records]

    async def scroll(
        self,
        where: Where,
        *,
        limit: int,
        offset: str | None = None,
        order: Order | None = None,
        payload: Payload = True,
        dense: bool = False,
    ) -> tuple[list[StoredPoint], str | None]:
        order_by = None
        if order is not None:
            direction = edge.Direction.Asc if order == "asc" else edge.Direction.Desc
            order_by = edge.OrderBy("timestamp", direction=direction)
        request = edge.ScrollRequest(
            offset=uuid.UUID(offset) if offset is not None else None,
            limit=limit,
            filter=to_filter(where),
            with_payload=_with_payload(payload),
            with_vector=[DENSE] if dense else False,
            order_by=order_by,
        )
        records, following = await self._backend.run(self.shard.scroll, request)
        return [_stored(r, dense) for r in records], None if following is None or order else str(following)

    async def count(self, where: Where) -> int:
        return await self._backend.run(self.shard.count, edge.CountRequest(exact=True, filter=to_filter(where)))

    async def delete(self, where: Where) -> None:
        selector = to_filter(where) or edge.Filter(must=[])
        await self._backend.write(self.shard.update, edge.UpdateOperation.delete_points_by_filter(selector))

    async def search(
        self, searches: Sequence[VectorSearch], *, limit: int, score_threshold: float | None = None
    ) -> list[StoredPoint]:
        if not searches:
            return []
        if len(searches) == 1:
            (one,) = searches
            request = edge.QueryRequest(
                limit=limit,
                query=_nearest(one),
                filter=to_filter(one.where),
                with_payload=True,
                score_threshold=score_threshold,
            )
        else:
            prefetches = [edge.Prefetch(limit=limit, query=_nearest(s), filter=to_filter(s.where)) for s in searches]
            request = edge.QueryRequest(
                limit=limit,
                prefetches=prefetches,
                query=cast(edge.Fusion, edge.Fusion.Rrf(k=RRF_K)),  # the stubs type Fusion.Rrf apart from Fusion
                with_payload=True,
                score_threshold=score_threshold,
            )
        return [_stored(p) for p in await self._backend.run(self.shard.query, request)]

    async def info(self) -> CollectionInfo:
        return self._backend.info(self._name)

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        meta = self._backend.read_meta(self._name)
        self._backend.write_meta(self._name, {**meta, "metadata": metadata})


def _nearest(search: VectorSearch) -> edge.Query:
    vector = _sparse(search.vector) if isinstance(search.vector, SparseTerms) else search.vector
    return edge.Query.Nearest(vector, using=DENSE if search.using == "dense" else SPARSE)


class EdgeBackend:
    """Qdrant Edge shards under ``<path>/edge`` (``VectorBackend``); open with ``EdgeBackend.open``."""

    def __init__(self, path: Path, lock: IO[str]) -> None:
        self._path = path
        self._root = path / "edge"
        self._lock = lock
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix=THREAD_PREFIX)
        self._collections: dict[str, EdgeCollection] = {}

    @classmethod
    def open(cls, path: Path) -> EdgeBackend:
        """Take the directory's lock (``EdgeLocked`` when it is held) and open nothing yet."""
        root = path / "edge"
        root.mkdir(parents=True, exist_ok=True)
        check_space(path)  # loading a shard writes too (its WAL, a new appendable segment)
        handle = (path / "edge.lock").open("a")
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            handle.close()
            raise EdgeLocked(str(path)) from None
        return cls(path, handle)

    @property
    def embedded(self) -> bool:
        return True

    @property
    def location(self) -> str:
        return str(self._path)

    @property
    def storage_dir(self) -> Path | None:
        return self._path

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in this backend's worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def write(self, function: Callable[..., T], *args: Any) -> T:
        """Like ``run``, for a call that may grow the files: refused with ENOSPC while the disk is nearly full.

        Edge writes through memory-mapped files, and a write that finds no room on the disk kills the process
        (SIGBUS) instead of failing. Refusing below ``MIN_FREE_BYTES`` turns that into an ``OSError`` the
        callers handle as a full disk (the indexer backs off; the messages wait in Redis).
        """
        check_space(self._path)
        return await self.run(function, *args)

    def _shard_dir(self, name: str) -> Path:
        return self._root / name

    def _meta_file(self, name: str) -> Path:
        return self._root / f"{name}.json"

    def read_meta(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads(self._meta_file(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def write_meta(self, name: str, data: dict[str, Any]) -> None:
        partial = self._meta_file(name).with_suffix(f".json.{os.getpid()}")
        partial.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(partial, self._meta_file(name))

    def info(self, name: str) -> CollectionInfo:
        meta = self.read_meta(name)
        size = meta.get("dense_size")
        return CollectionInfo(
            dense_size=int(size) if size is not None else None,
            has_sparse=bool(meta.get("sparse")),
            metadata=dict(meta.get("metadata") or {}),
        )

    async def exists(self, name: str) -> bool:
        return name in self._collections or (self._meta_file(name).exists() and self._shard_dir(name).is_dir())

    async def create(
        self,
        name: str,
        *,
        dimensions: int,
        metadata: dict[str, Any],
        keyword_fields: Sequence[str],
        register: bool = True,
    ) -> None:
        """Create the shard; ``register=False`` leaves it unlisted until ``register`` (a migration fills it first)."""
        config = edge.EdgeConfig(
            vectors={DENSE: edge.EdgeVectorParams(size=dimensions, distance=edge.Distance.Cosine)},
            sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
        )
        fields: list[tuple[str, Any]] = [
            ("agent", edge.KeywordIndexParams(is_tenant=True)),
            ("timestamp", edge.PayloadSchemaType.Datetime),
            *((f, edge.PayloadSchemaType.Keyword) for f in keyword_fields),
        ]

        def build() -> edge.EdgeShard:
            shard = edge.EdgeShard.create(str(self._shard_dir(name)), config)
            for field_name, schema in fields:
                shard.update(edge.UpdateOperation.create_field_index(field_name, schema))
            shard.flush()
            return shard

        shard = await self.write(build)
        self._collections[name] = EdgeCollection(self, name, shard)
        if register:
            self.register(name, dimensions, metadata)

    def register(self, name: str, dimensions: int, metadata: dict[str, Any]) -> None:
        """List a created shard as a collection (its metadata file)."""
        self.write_meta(name, {"dense_size": dimensions, "sparse": True, "metadata": metadata})

    async def discard(self, name: str) -> None:
        """Delete a shard that was never registered (a migration that stopped half way)."""
        if self._meta_file(name).exists():
            return
        opened = self._collections.pop(name, None)
        if opened is not None:
            await self.run(opened.shard.close)
        if self._shard_dir(name).exists():
            await self.run(shutil.rmtree, self._shard_dir(name))

    async def ensure_indexes(self, name: str, keyword_fields: Sequence[str]) -> None:
        return None  # made with the shard

    async def collection(self, name: str) -> EdgeCollection:
        """Open an existing collection's shard (once; in a worker thread: loading replays the WAL)."""
        if name not in self._collections:
            shard = await self.run(edge.EdgeShard.load, str(self._shard_dir(name)))
            self._collections.setdefault(name, EdgeCollection(self, name, shard))
        return self._collections[name]

    def shards(self) -> dict[str, edge.EdgeShard]:
        """The raw shards of the open collections (whole-store scans in tests read them directly)."""
        return {name: each.shard for name, each in self._collections.items()}

    async def names(self) -> list[str]:
        return sorted(p.stem for p in self._root.glob("*.json") if self._shard_dir(p.stem).is_dir())

    async def close(self) -> None:
        collections, self._collections = list(self._collections.values()), {}

        def close_all() -> None:
            for each in collections:
                each.shard.flush()
                each.shard.close()

        try:
            await self.run(close_all)
        finally:
            self._pool.shutdown(wait=True)
            with contextlib.suppress(Exception):
                portalocker.unlock(self._lock)
            self._lock.close()
