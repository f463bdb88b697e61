"""Queries over membot's collections: agent/scope/time filters, the hybrid (dense + BM25, RRF) query, paging,
and the scroll/count/delete helpers recall and archival memory share. Collections themselves: ``memory.qdrant.store``;
the engines behind them: ``memory.qdrant.backend``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import PAGE_SIZE, MemoryEditError, SearchHit, SearchPage
from bot.core.ports import Embedder
from memory.qdrant.backend import (
    Condition,
    HasIds,
    Match,
    StoredPoint,
    TimeRange,
    VectorCollection,
    VectorSearch,
    Where,
    as_utc,
    from_rfc3339,
    to_rfc3339,
)
from memory.qdrant.dates import TimeWindow, query_window
from memory.qdrant.sparse import SparseTerms, query_vector
from memory.qdrant.store import MAX_RESULTS

__all__ = ["as_utc", "from_rfc3339", "to_rfc3339"]

SearchMode = Literal["hybrid", "dense", "sparse"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "sparse")

_SCROLL_BATCH = 256

log = logging.getLogger(__name__)


def match_field(key: str, value: str) -> Match:
    return Match(key, value)


def agent_filter(agent: AgentKey, context_scope: Scope, extra: Sequence[Condition] = ()) -> Where:
    """The agent's points; only public ones when ``context_scope`` is PUBLIC."""
    must: list[Condition] = [match_field("agent", str(agent))]
    if context_scope == Scope.PUBLIC:
        must.append(match_field("scope", Scope.PUBLIC.value))
    must.extend(extra)
    return tuple(must)


async def delete_ids(collection: VectorCollection, agent: AgentKey, ids: Sequence[str]) -> list[Scope]:
    """Delete the agent's points among ``ids`` (ids of other agents are never touched); return their scopes."""
    if not ids:
        return []
    found = await collection.retrieve(list(ids), payload=["agent", "scope"])
    mine = [r for r in found if r.payload.get("agent") == str(agent)]
    if not mine:
        return []
    await collection.delete((*agent_filter(agent, Scope.PRIVATE), HasIds(tuple(r.id for r in mine))))
    return [Scope(r.payload.get("scope", Scope.PRIVATE.value)) for r in mine]


def time_range(start: Any, end: Any) -> TimeRange:
    """Inclusive timestamp range."""
    return TimeRange(as_utc(start), as_utc(end))


def check_page(function: str, page: int) -> None:
    if page < 0:
        raise MemoryEditError(f"{function} failed: page {page} does not exist. Pages are numbered from 0.")


async def hybrid_query(
    collection: VectorCollection,
    *,
    dense: list[float],
    sparse: SparseTerms,
    query_filter: Where,
    limit: int = MAX_RESULTS,
    window: TimeWindow | None = None,
    mode: SearchMode = "hybrid",
) -> list[StoredPoint]:
    """Dense and sparse searches (each filtered) fused with Reciprocal Rank Fusion, best first.

    With a ``window`` (a date named in the query), the same two searches restricted to that window join the
    fusion, so points from then rank higher and the rest still count. ``mode`` "dense" or "sparse" runs that one
    search alone, without a window (the baselines of ``bench/retrieval.py``).
    """
    if mode != "hybrid":
        if mode == "sparse" and not sparse:
            return []
        vector: list[float] | SparseTerms = dense if mode == "dense" else sparse
        return await collection.search([VectorSearch(mode, vector, query_filter)], limit=limit)
    searches: list[VectorSearch] = []
    wheres = [query_filter] if window is None else [query_filter, (*query_filter, time_range(window.start, window.end))]
    for each in wheres:
        searches.append(VectorSearch("dense", dense, each))
        if sparse:  # a query of stopwords only has no sparse terms: dense alone
            searches.append(VectorSearch("sparse", sparse, each))
    return await collection.search(searches, limit=limit)


async def search_page(
    collection: VectorCollection,
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
        collection,
        dense=dense,
        sparse=query_vector(query),
        query_filter=agent_filter(agent, context_scope),
        limit=max_results,
        window=window.widened() if (window := query_window(query)) else None,
        mode=mode,
    )
    return page_of(points, page)


def to_hit(point: StoredPoint) -> SearchHit:
    payload = point.payload
    return SearchHit(
        id=point.id,
        text=str(payload.get("text", "")),
        timestamp=from_rfc3339(str(payload["timestamp"])),
        score=point.score,
        role=payload.get("role"),
        author=payload.get("author"),
        attachment_text=payload.get("attachment_text"),
    )


def page_of(points: Sequence[StoredPoint], page: int, total: int | None = None) -> SearchPage:
    """Page ``page`` (PAGE_SIZE hits) of ranked ``points``; ``total`` defaults to how many were ranked."""
    chosen = points[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    return SearchPage(hits=tuple(to_hit(p) for p in chosen), page=page, total=len(points) if total is None else total)


async def count_matching(collection: VectorCollection, query_filter: Where) -> int:
    return await collection.count(query_filter)


async def scroll_all(
    collection: VectorCollection, query_filter: Where, *, payload: bool | Sequence[str] = True, dense: bool = False
) -> list[StoredPoint]:
    """Every matching point with its payload (and its dense vector when asked for)."""
    records: list[StoredPoint] = []
    offset: str | None = None
    while True:
        batch, offset = await collection.scroll(
            query_filter, limit=_SCROLL_BATCH, offset=offset, payload=payload, dense=dense
        )
        records.extend(batch)
        if offset is None:
            return records


def export_records(kind: str, records: Iterable[StoredPoint]) -> list[dict[str, Any]]:
    """JSON-ready dicts, oldest first."""
    items = [{"kind": kind, "id": r.id, **r.payload} for r in records]
    return sorted(items, key=lambda item: str(item.get("timestamp", "")))


async def delete_matching(collection: VectorCollection, query_filter: Where) -> int:
    """Delete every matching point; return how many there were."""
    count = await count_matching(collection, query_filter)
    if count:
        await collection.delete(query_filter)
    return count
