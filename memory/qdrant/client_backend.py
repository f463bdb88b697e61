"""The server backend: qdrant-client's ``AsyncQdrantClient`` (a Qdrant server at ``QDRANT_URL``).

It speaks the server's API; tests run it on qdrant-client's local mode (``AsyncQdrantClient(path=...)`` or
``":memory:"``), which answers the same API in pure Python, so the same retrieval cases run on both backends.
Membot's metadata (``dimensions``, ``embedder``, ``index_version``) is the collection's own metadata. Payload
indexes are made on a server only (local mode ignores them and warns).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from qdrant_client import AsyncQdrantClient, models

from memory.qdrant.backend import (
    DENSE,
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
    as_utc,
)
from memory.qdrant.sparse import SparseTerms


def to_filter(where: Where) -> models.Filter:
    """qdrant-client's filter for ``where`` (empty: every point)."""
    must: list[models.Condition] = []
    for condition in where:
        if isinstance(condition, Match):
            must.append(models.FieldCondition(key=condition.key, match=models.MatchValue(value=condition.value)))
        elif isinstance(condition, TimeRange):
            window = models.DatetimeRange(gte=as_utc(condition.start), lte=as_utc(condition.end))
            must.append(models.FieldCondition(key="timestamp", range=window))
        elif isinstance(condition, HasIds):
            must.append(models.HasIdCondition(has_id=list(condition.ids)))
    return models.Filter(must=must)


def to_sparse(terms: SparseTerms) -> models.SparseVector:
    return models.SparseVector(indices=terms.indices, values=terms.values)


def _vectors(point: VectorPoint) -> dict[str, Any]:
    return {DENSE: point.dense, SPARSE: to_sparse(point.sparse)}


def _with_payload(payload: Payload) -> bool | list[str]:
    return payload if isinstance(payload, bool) else list(payload)


def _stored(record: models.Record | models.ScoredPoint, dense: bool = False) -> StoredPoint:
    vector = record.vector.get(DENSE) if dense and isinstance(record.vector, dict) else None
    return StoredPoint(
        id=str(record.id),
        payload=dict(record.payload or {}),
        dense=list(cast(list[float], vector)) if isinstance(vector, list) else None,
        score=float(getattr(record, "score", 0.0) or 0.0),
    )


def _query(search: VectorSearch) -> list[float] | models.SparseVector:
    return to_sparse(search.vector) if isinstance(search.vector, SparseTerms) else search.vector


class ClientCollection:
    """One collection through qdrant-client (``VectorCollection``)."""

    def __init__(self, client: AsyncQdrantClient, name: str) -> None:
        self._client = client
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        if points:
            structs = [models.PointStruct(id=p.id, vector=_vectors(p), payload=p.payload) for p in points]
            await self._client.upsert(self._name, structs, wait=True)

    async def update_vectors(self, points: Sequence[VectorPoint]) -> None:
        if points:
            vectors = [models.PointVectors(id=p.id, vector=_vectors(p)) for p in points]
            await self._client.update_vectors(self._name, points=vectors, wait=True)

    async def retrieve(self, ids: Sequence[str], *, payload: Payload = True, dense: bool = False) -> list[StoredPoint]:
        if not ids:
            return []
        records = await self._client.retrieve(
            self._name, list(ids), with_payload=_with_payload(payload), with_vectors=[DENSE] if dense else False
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
            direction = models.Direction.ASC if order == "asc" else models.Direction.DESC
            order_by = models.OrderBy(key="timestamp", direction=direction)
        records, following = await self._client.scroll(
            self._name,
            scroll_filter=to_filter(where),
            limit=limit,
            offset=offset,
            order_by=order_by,
            with_payload=_with_payload(payload),
            with_vectors=[DENSE] if dense else False,
        )
        return [_stored(r, dense) for r in records], None if following is None or order else str(following)

    async def count(self, where: Where) -> int:
        return (await self._client.count(self._name, count_filter=to_filter(where), exact=True)).count

    async def delete(self, where: Where) -> None:
        selector = models.FilterSelector(filter=to_filter(where))
        await self._client.delete(self._name, points_selector=selector, wait=True)

    async def search(
        self, searches: Sequence[VectorSearch], *, limit: int, score_threshold: float | None = None
    ) -> list[StoredPoint]:
        if not searches:
            return []
        if len(searches) == 1:
            (one,) = searches
            response = await self._client.query_points(
                self._name,
                query=_query(one),
                using=DENSE if one.using == "dense" else SPARSE,
                query_filter=to_filter(one.where),
                limit=limit,
                score_threshold=score_threshold,
                with_payload=True,
            )
        else:
            prefetch = [
                models.Prefetch(
                    query=_query(s),
                    using=DENSE if s.using == "dense" else SPARSE,
                    filter=to_filter(s.where),
                    limit=limit,
                )
                for s in searches
            ]
            response = await self._client.query_points(
                self._name,
                prefetch=prefetch,
                query=models.FusionQuery(fusion=models.Fusion.RRF),  # k = RRF_K; prefetches are filtered
                limit=limit,
                score_threshold=score_threshold,
                with_payload=True,
            )
        return [_stored(p) for p in response.points]

    async def info(self) -> CollectionInfo:
        config = (await self._client.get_collection(self._name)).config
        vectors = config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        return CollectionInfo(
            dense_size=dense.size if dense is not None else None,
            has_sparse=SPARSE in (config.params.sparse_vectors or {}),
            metadata=dict(config.metadata or {}),
        )

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        await self._client.update_collection(self._name, metadata=metadata)


class ClientBackend:
    """Collections through an ``AsyncQdrantClient`` (``VectorBackend``)."""

    def __init__(self, client: AsyncQdrantClient, location: str) -> None:
        self.client = client
        self._location = location

    @property
    def embedded(self) -> bool:
        options = self.client.init_options
        return options.get("path") is not None or options.get("location") == ":memory:"

    @property
    def location(self) -> str:
        return self._location

    @property
    def storage_dir(self) -> Path | None:
        path = self.client.init_options.get("path")
        return Path(path) if path else None

    async def exists(self, name: str) -> bool:
        return await self.client.collection_exists(name)

    async def create(
        self, name: str, *, dimensions: int, metadata: dict[str, Any], keyword_fields: Sequence[str]
    ) -> None:
        await self.client.create_collection(
            name,
            vectors_config={DENSE: models.VectorParams(size=dimensions, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata=metadata,
        )
        await self.ensure_indexes(name, keyword_fields)

    async def ensure_indexes(self, name: str, keyword_fields: Sequence[str]) -> None:
        """Create the payload indexes a collection lacks (on a server; none in local mode)."""
        if self.embedded:
            return  # payload indexes have no effect in local mode (and qdrant-client warns about them)
        existing = (await self.client.get_collection(name)).payload_schema
        wanted: dict[str, models.PayloadSchemaType | models.KeywordIndexParams] = {
            "agent": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            "timestamp": models.PayloadSchemaType.DATETIME,
            **{field: models.PayloadSchemaType.KEYWORD for field in keyword_fields},
        }
        for field, schema in wanted.items():
            if field not in existing:
                await self.client.create_payload_index(name, field, field_schema=schema, wait=True)

    async def collection(self, name: str) -> ClientCollection:
        return ClientCollection(self.client, name)

    async def names(self) -> list[str]:
        return sorted(c.name for c in (await self.client.get_collections()).collections)

    async def close(self) -> None:
        await self.client.close()
