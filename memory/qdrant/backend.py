"""The seam between membot's memory logic and a Qdrant engine: neutral point/filter types and two Protocols.

``VectorBackend`` opens named collections (each holding a ``dense`` and a ``sparse``/IDF vector per point);
``VectorCollection`` is what recall, archival, counts and reindex use: upsert, retrieve, scroll, count, delete and
one ``search`` (a single nearest-neighbour search, or several fused with RRF). Two implementations:
``memory.qdrant.edge_backend`` (Qdrant Edge in-process, the embedded default) and ``memory.qdrant.client_backend``
(qdrant-client: a server at ``QDRANT_URL``, or its local mode in tests). Filters are conjunctions of a few
condition kinds (``Where``), enough for every query membot makes, so both backends answer them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from memory.qdrant.sparse import SparseTerms

DENSE = "dense"
SPARSE = "sparse"
RRF_K = 2  # Qdrant's default RRF constant: score = sum over searches of 1 / (k + rank), rank from 0

Using = Literal["dense", "sparse"]
Order = Literal["asc", "desc"]


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken as UTC."""
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC, fixed width (so string order is time order); a naive datetime is taken as UTC."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True)
class Match:
    """The payload field ``key`` equals ``value`` (keyword)."""

    key: str
    value: str


@dataclass(frozen=True)
class TimeRange:
    """``start <= timestamp <= end`` on the ``timestamp`` payload field (aware datetimes)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class HasIds:
    """The point id is one of ``ids``."""

    ids: tuple[str, ...]


Condition = Match | TimeRange | HasIds
Where = tuple[Condition, ...]  # every condition holds; () matches every point


@dataclass(frozen=True)
class VectorPoint:
    """A point to write: both vectors, and the payload (ignored by ``update_vectors``)."""

    id: str
    dense: list[float]
    sparse: SparseTerms
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredPoint:
    """A point read back: its payload (as selected), its dense vector when asked for, its score in a search."""

    id: str
    payload: dict[str, Any]
    dense: list[float] | None = None
    score: float = 0.0


@dataclass(frozen=True)
class VectorSearch:
    """One nearest-neighbour search: by ``dense`` or ``sparse`` vector, among points matching ``where``."""

    using: Using
    vector: list[float] | SparseTerms
    where: Where


@dataclass(frozen=True)
class CollectionInfo:
    """How an existing collection was configured: dense size, whether it has the sparse vector, its metadata."""

    dense_size: int | None
    has_sparse: bool
    metadata: dict[str, Any]


Payload = bool | Sequence[str]  # all of it, none, or these fields


class VectorCollection(Protocol):
    """One collection of one backend. Every call may run in a worker thread; none blocks the event loop."""

    @property
    def name(self) -> str: ...

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        """Write points (replacing any with the same id); durable (in the WAL) when it returns."""

    async def update_vectors(self, points: Sequence[VectorPoint]) -> None:
        """Replace the vectors of existing points, keeping their payloads."""

    async def retrieve(self, ids: Sequence[str], *, payload: Payload = True, dense: bool = False) -> list[StoredPoint]:
        """The points among ``ids`` that exist (in no particular order)."""

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
        """A page of matching points and the offset of the next page (None at the end, and always when ordered
        by ``timestamp`` with ``order``)."""

    async def count(self, where: Where) -> int:
        """How many points match (exact)."""

    async def delete(self, where: Where) -> None:
        """Delete every matching point."""

    async def search(
        self, searches: Sequence[VectorSearch], *, limit: int, score_threshold: float | None = None
    ) -> list[StoredPoint]:
        """Best first, with payloads: one search alone, or several fused with RRF (``RRF_K``)."""

    async def info(self) -> CollectionInfo: ...

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the collection's metadata (membot's ``dimensions``, ``embedder``, ``index_version``)."""


class VectorBackend(Protocol):
    """A Qdrant engine holding membot's collections."""

    @property
    def embedded(self) -> bool:
        """True when the data lives in this process's data directory (one process at a time)."""

    @property
    def location(self) -> str:
        """The server URL or the embedded directory."""

    @property
    def storage_dir(self) -> Path | None:
        """The directory on the local disk holding the data (to explain disk faults), or None for a server."""

    async def exists(self, name: str) -> bool: ...

    async def create(
        self, name: str, *, dimensions: int, metadata: dict[str, Any], keyword_fields: Sequence[str]
    ) -> None:
        """Create a collection: cosine ``dense`` vectors, ``sparse`` vectors with IDF, payload indexes on
        ``agent`` (tenant), ``timestamp`` (datetime) and ``keyword_fields``."""

    async def ensure_indexes(self, name: str, keyword_fields: Sequence[str]) -> None:
        """Create the payload indexes an existing collection lacks (one made by an older membot)."""

    async def collection(self, name: str) -> VectorCollection:
        """The handle of an existing collection."""

    async def names(self) -> list[str]:
        """Every collection's name."""

    async def close(self) -> None:
        """Flush and release the data (frees the embedded directory for other processes)."""
