"""Queries over membot's Qdrant collections: agent/scope/time filters, the hybrid (dense + BM25, RRF) query, paging,
and the scroll/count/delete helpers recall and archival memory share. Collections themselves: ``memory.qdrant.store``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from qdrant_client import AsyncQdrantClient, models

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import PAGE_SIZE, MemoryEditError, SearchHit, SearchPage
from bot.core.ports import Embedder
from memory.qdrant.dates import TimeWindow, query_window
from memory.qdrant.sparse import SparseTerms, query_vector
from memory.qdrant.store import DENSE, MAX_RESULTS, SPARSE

SearchMode = Literal["hybrid", "dense", "sparse"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "sparse")

_SCROLL_BATCH = 256

log = logging.getLogger(__name__)


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


def match_field(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def agent_filter(agent: AgentKey, context_scope: Scope, extra: Sequence[models.FieldCondition] = ()) -> models.Filter:
    """The agent's points; only public ones when ``context_scope`` is PUBLIC."""
    must: list[models.FieldCondition] = [match_field("agent", str(agent))]
    if context_scope == Scope.PUBLIC:
        must.append(match_field("scope", Scope.PUBLIC.value))
    must.extend(extra)
    return models.Filter(must=list(must))


async def delete_ids(client: AsyncQdrantClient, collection: str, agent: AgentKey, ids: Sequence[str]) -> list[Scope]:
    """Delete the agent's points among ``ids`` (ids of other agents are never touched); return their scopes."""
    if not ids:
        return []
    found = await client.retrieve(collection, list(ids), with_payload=["agent", "scope"])
    mine = [r for r in found if (r.payload or {}).get("agent") == str(agent)]
    if not mine:
        return []
    base = agent_filter(agent, Scope.PRIVATE)
    has_id = models.HasIdCondition(has_id=[r.id for r in mine])
    await delete_matching(client, collection, models.Filter(must=[*(base.must or []), has_id]))
    return [Scope((r.payload or {}).get("scope", Scope.PRIVATE.value)) for r in mine]


def time_range(start: datetime, end: datetime) -> models.FieldCondition:
    """Inclusive timestamp range."""
    return models.FieldCondition(key="timestamp", range=models.DatetimeRange(gte=as_utc(start), lte=as_utc(end)))


def to_sparse(terms: SparseTerms) -> models.SparseVector:
    return models.SparseVector(indices=terms.indices, values=terms.values)


def check_page(function: str, page: int) -> None:
    if page < 0:
        raise MemoryEditError(f"{function} failed: page {page} does not exist. Pages are numbered from 0.")


def _within(query_filter: models.Filter, window: TimeWindow) -> models.Filter:
    must = query_filter.must
    conditions = [] if must is None else list(must) if isinstance(must, list) else [must]
    return models.Filter(must=[*conditions, time_range(window.start, window.end)])


async def hybrid_query(
    client: AsyncQdrantClient,
    collection: str,
    *,
    dense: list[float],
    sparse: SparseTerms,
    query_filter: models.Filter,
    limit: int = MAX_RESULTS,
    window: TimeWindow | None = None,
    mode: SearchMode = "hybrid",
) -> list[models.ScoredPoint]:
    """Dense and sparse prefetch (each filtered) fused with Reciprocal Rank Fusion, best first.

    With a ``window`` (a date named in the query), the same two searches restricted to that window join the
    fusion, so points from then rank higher and the rest still count. ``mode`` "dense" or "sparse" runs that one
    search alone, without a window (the baselines of ``bench/retrieval.py``).
    """
    if mode != "hybrid":
        if mode == "sparse" and not sparse:
            return []
        vector: Any = dense if mode == "dense" else to_sparse(sparse)
        single = await client.query_points(
            collection,
            query=vector,
            using=DENSE if mode == "dense" else SPARSE,
            query_filter=query_filter,
            limit=limit,
            with_payload=True,
        )
        return single.points
    prefetch: list[models.Prefetch] = []
    for each in [query_filter] if window is None else [query_filter, _within(query_filter, window)]:
        prefetch.append(models.Prefetch(query=dense, using=DENSE, filter=each, limit=limit))
        if sparse:  # a query of stopwords only has no sparse terms: dense alone
            prefetch.append(models.Prefetch(query=to_sparse(sparse), using=SPARSE, filter=each, limit=limit))
    response = await client.query_points(
        collection,
        prefetch=prefetch,
        query=models.FusionQuery(fusion=models.Fusion.RRF),  # prefetches are filtered: no filter needed here
        limit=limit,
        with_payload=True,
    )
    return response.points


async def search_page(
    client: AsyncQdrantClient,
    collection: str,
    embedder: Embedder,
    *,
    function: str,
    agent: AgentKey,
    query: str,
    page: int,
    context_scope: Scope,
    max_results: int = MAX_RESULTS,
    mode: SearchMode = "hybrid",
) -> SearchPage:
    """One page of a hybrid search of ``agent``'s points; ``function`` names the memory function in errors.

    The query is embedded as it is; a date in it ("in July 2023") favours points from that time (see
    ``hybrid_query``), widened by ``MENTION_SLACK`` since events are often told about days later. When the query
    cannot be embedded (the embeddings API is down), the search runs on words (BM25) alone.
    """
    check_page(function, page)
    if not query.strip():
        raise MemoryEditError(f"{function} failed: the query is empty. Say what to look for.")
    dense: list[float] = []
    if mode != "sparse":
        try:
            dense = (await embedder.embed([query]))[0]
        except Exception as exc:  # the embedder is down (an API outage): words alone still find things
            if mode == "dense":
                raise
            log.warning("query embedding failed; searching by words only", extra={"error": type(exc).__name__})
            mode = "sparse"
    points = await hybrid_query(
        client,
        collection,
        dense=dense,
        sparse=query_vector(query),
        query_filter=agent_filter(agent, context_scope),
        limit=max_results,
        window=window.widened() if (window := query_window(query)) else None,
        mode=mode,
    )
    return page_of(points, page)


def to_hit(point: models.ScoredPoint | models.Record) -> SearchHit:
    payload = point.payload or {}
    return SearchHit(
        id=str(point.id),
        text=str(payload.get("text", "")),
        timestamp=from_rfc3339(str(payload["timestamp"])),
        score=float(getattr(point, "score", 0.0) or 0.0),
        role=payload.get("role"),
        author=payload.get("author"),
    )


def page_of(points: Sequence[models.ScoredPoint | models.Record], page: int, total: int | None = None) -> SearchPage:
    """Page ``page`` (PAGE_SIZE hits) of ranked ``points``; ``total`` defaults to how many were ranked."""
    chosen = points[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    return SearchPage(hits=tuple(to_hit(p) for p in chosen), page=page, total=len(points) if total is None else total)


async def count_matching(client: AsyncQdrantClient, collection: str, query_filter: models.Filter) -> int:
    return (await client.count(collection, count_filter=query_filter, exact=True)).count


async def scroll_all(client: AsyncQdrantClient, collection: str, query_filter: models.Filter) -> list[models.Record]:
    """Every matching point with its payload (no vectors)."""
    records: list[models.Record] = []
    offset: Any = None
    while True:
        batch, offset = await client.scroll(
            collection, scroll_filter=query_filter, limit=_SCROLL_BATCH, offset=offset, with_payload=True
        )
        records.extend(batch)
        if offset is None:
            return records


def export_records(kind: str, records: Iterable[models.Record]) -> list[dict[str, Any]]:
    """JSON-ready dicts, oldest first."""
    items = [{"kind": kind, "id": str(r.id), **(r.payload or {})} for r in records]
    return sorted(items, key=lambda item: str(item.get("timestamp", "")))


async def delete_matching(client: AsyncQdrantClient, collection: str, query_filter: models.Filter) -> int:
    """Delete every matching point; return how many there were."""
    count = await count_matching(client, collection, query_filter)
    if count:
        await client.delete(collection, points_selector=models.FilterSelector(filter=query_filter), wait=True)
    return count
