"""Recall memory: every message ever exchanged, in one Qdrant collection shared by all agents."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from bot.events import AgentKey, Scope
from bot.memory_types import PAGE_SIZE, RecallEntry, SearchPage
from bot.ports import Embedder
from memory.qdrant import (
    DENSE,
    MAX_RESULTS,
    SPARSE,
    agent_filter,
    as_utc,
    check_page,
    count_matching,
    delete_ids,
    delete_matching,
    export_records,
    page_of,
    scroll_all,
    search_page,
    time_range,
    to_rfc3339,
    to_sparse,
)
from memory.sparse import document_vector

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://membot.invalid/recall")


def recall_point_id(entry: RecallEntry) -> str:
    """Deterministic point id, so adding the same message again overwrites instead of duplicating.

    Keyed by the platform message id when there is one (several replies to one message differ by text),
    else by the timestamp.
    """
    digest = hashlib.sha256(entry.text.encode()).hexdigest()
    anchor = f"id:{entry.message_id}" if entry.message_id else f"at:{to_rfc3339(entry.timestamp)}"
    return str(uuid.uuid5(_NAMESPACE, f"{entry.agent}|{entry.platform}|{entry.role}|{anchor}|{digest}"))


def _payload(entry: RecallEntry) -> dict[str, Any]:
    return {
        "agent": str(entry.agent),
        "platform": entry.platform,
        "channel": entry.channel,
        "role": entry.role,
        "author": entry.author,
        "timestamp": to_rfc3339(entry.timestamp),
        "scope": entry.scope.value,
        "message_id": entry.message_id,
        "text": entry.text,
    }


class QdrantRecallMemory:
    """``RecallMemory`` on Qdrant: hybrid (dense + BM25) search and date-range search, always per agent."""

    def __init__(
        self, client: AsyncQdrantClient, collection: str, embedder: Embedder, *, max_results: int = MAX_RESULTS
    ) -> None:
        self._client = client
        self._collection = collection
        self._embedder = embedder
        self._max_results = max_results

    async def add(self, entries: Sequence[RecallEntry]) -> None:
        """Store messages (one embedding batch, one upsert); blank texts are skipped; retries are idempotent."""
        entries = [e for e in entries if e.text.strip()]
        if not entries:
            return
        vectors = await self._embedder.embed([e.text for e in entries])
        points = [
            models.PointStruct(
                id=recall_point_id(entry),
                vector={DENSE: vector, SPARSE: to_sparse(document_vector(entry.text))},
                payload=_payload(entry),
            )
            for entry, vector in zip(entries, vectors, strict=True)
        ]
        await self._client.upsert(self._collection, points, wait=True)

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage:
        """Messages matching ``query`` by meaning or words, best first; ``total`` counts at most ``max_results``."""
        return await search_page(
            self._client,
            self._collection,
            self._embedder,
            function="conversation_search",
            agent=agent,
            query=query,
            page=page,
            context_scope=context_scope,
            max_results=self._max_results,
        )

    async def search_date(
        self, agent: AgentKey, start: datetime, end: datetime, page: int, context_scope: Scope
    ) -> SearchPage:
        """Messages with ``start <= timestamp <= end`` (naive = UTC; swapped if reversed), oldest first."""
        check_page("conversation_search_date", page)
        start, end = sorted((as_utc(start), as_utc(end)))
        query_filter = agent_filter(agent, context_scope, [time_range(start, end)])
        total = await count_matching(self._client, self._collection, query_filter)
        if page * PAGE_SIZE >= total:
            return page_of([], page, total)
        records, _ = await self._client.scroll(
            self._collection,
            scroll_filter=query_filter,
            order_by=models.OrderBy(key="timestamp", direction=models.Direction.ASC),
            limit=(page + 1) * PAGE_SIZE,
            with_payload=True,
        )
        return page_of(records, page, total)

    async def count(self, agent: AgentKey) -> int:
        return await count_matching(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        records = await scroll_all(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))
        return export_records("recall", records)

    async def erase(self, agent: AgentKey) -> int:
        return await delete_matching(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))

    async def delete(self, agent: AgentKey, ids: Sequence[str]) -> int:
        """Delete this agent's entries with these ids; return how many were deleted."""
        return await delete_ids(self._client, self._collection, agent, ids)
