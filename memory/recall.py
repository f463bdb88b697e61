"""Recall memory: every message ever exchanged, in one Qdrant collection shared by all agents.

Each message is indexed for search as ``memory.indexing`` describes (speaker-aware text, previous-message
context, attachment text for keywords); the payload keeps the message exactly as it was said.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from qdrant_client import AsyncQdrantClient, models

from bot.events import AgentKey, Scope
from bot.memory_types import PAGE_SIZE, RecallEntry, SearchPage
from bot.ports import Embedder
from memory.indexing import CONTEXT_GAP, contextualize, dense_text, sparse_text
from memory.qdrant import DENSE, MAX_RESULTS, SPARSE
from memory.search import (
    SearchMode,
    agent_filter,
    as_utc,
    check_page,
    count_matching,
    delete_ids,
    delete_matching,
    export_records,
    from_rfc3339,
    match_field,
    page_of,
    scroll_all,
    search_page,
    time_range,
    to_rfc3339,
    to_sparse,
)
from memory.sparse import document_vector

_REMEMBERED_CHANNELS = 4096  # channels whose latest message id is kept in memory (saves a filtered scroll)
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
    extra = {"attachment_text": entry.attachment_text} if entry.attachment_text else {}
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
        **extra,
    }


class QdrantRecallMemory:
    """``RecallMemory`` on Qdrant: hybrid (dense + BM25) search and date-range search, always per agent.

    ``mode`` ("dense" or "sparse" instead of "hybrid") is for measuring each half alone (``bench/retrieval.py``).
    """

    def __init__(
        self,
        client: AsyncQdrantClient,
        collection: str,
        embedder: Embedder,
        *,
        max_results: int = MAX_RESULTS,
        mode: SearchMode = "hybrid",
    ) -> None:
        self._client = client
        self._collection = collection
        self._embedder = embedder
        self._max_results = max_results
        self._mode: SearchMode = mode
        self._latest: OrderedDict[tuple[str, str], tuple[datetime, str]] = OrderedDict()

    async def add(self, entries: Sequence[RecallEntry]) -> None:
        """Store messages (one embedding batch, one upsert); blank texts are skipped; retries are idempotent.

        Each message's dense vector takes in the one before it in its channel (from this batch or the store).
        """
        entries = [e for e in entries if e.text.strip()]
        if not entries:
            return
        ids = [recall_point_id(e) for e in entries]
        own = await self._embedder.embed([dense_text(e.author, e.text) for e in entries])
        channels: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i in sorted(range(len(entries)), key=lambda i: as_utc(entries[i].timestamp)):
            channels[(str(entries[i].agent), entries[i].channel)].append(i)
        vectors = list(own)
        for order in channels.values():
            first = entries[order[0]]
            previous = await self._previous(first, exclude={ids[i] for i in order})
            mixed = contextualize([own[i] for i in order], [as_utc(entries[i].timestamp) for i in order], previous)
            for i, vector in zip(order, mixed, strict=True):
                vectors[i] = vector
            self._remember((str(first.agent), first.channel), as_utc(entries[order[-1]].timestamp), ids[order[-1]])
        points = [
            models.PointStruct(
                id=point_id,
                vector={
                    DENSE: vector,
                    SPARSE: to_sparse(document_vector(sparse_text(entry.author, entry.text, entry.attachment_text))),
                },
                payload=_payload(entry),
            )
            for point_id, entry, vector in zip(ids, entries, vectors, strict=True)
        ]
        await self._client.upsert(self._collection, points, wait=True)

    def _remember(self, channel: tuple[str, str], moment: datetime, point_id: str) -> None:
        known = self._latest.get(channel)
        if known is None or moment >= known[0]:
            self._latest[channel] = (moment, point_id)
            self._latest.move_to_end(channel)
            while len(self._latest) > _REMEMBERED_CHANNELS:
                self._latest.popitem(last=False)

    async def _previous(self, entry: RecallEntry, exclude: set[str]) -> tuple[datetime, list[float]] | None:
        """Time and stored dense vector of the latest message in ``entry``'s channel within CONTEXT_GAP before it.

        The last message this process stored in the channel is fetched by id (cheap, and gone if it was erased);
        otherwise the store is searched (a filtered scroll: O(points) in embedded Qdrant).
        """
        moment = as_utc(entry.timestamp)
        known = self._latest.get((str(entry.agent), entry.channel))
        if known is not None and known[0] <= moment and known[1] not in exclude:
            if moment - known[0] > CONTEXT_GAP:
                return None
            found = await self._client.retrieve(self._collection, [known[1]], with_vectors=[DENSE])
            vector = found[0].vector.get(DENSE) if found and isinstance(found[0].vector, dict) else None
            if isinstance(vector, list):
                return known[0], cast(list[float], vector)
        conditions = [match_field("channel", entry.channel), time_range(moment - CONTEXT_GAP, moment)]
        records, _ = await self._client.scroll(
            self._collection,
            scroll_filter=agent_filter(entry.agent, Scope.PRIVATE, conditions),
            order_by=models.OrderBy(key="timestamp", direction=models.Direction.DESC),
            limit=len(exclude) + 1,
            with_payload=["timestamp"],
            with_vectors=[DENSE],
        )
        for record in records:
            vector = record.vector.get(DENSE) if isinstance(record.vector, dict) else None
            if str(record.id) not in exclude and isinstance(vector, list):
                return from_rfc3339(str((record.payload or {})["timestamp"])), cast(list[float], vector)
        return None

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
            mode=self._mode,
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

    async def count(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> int:
        """How many entries a search from ``context_scope`` could find (only public ones from PUBLIC)."""
        return await count_matching(self._client, self._collection, agent_filter(agent, context_scope))

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        records = await scroll_all(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))
        return export_records("recall", records)

    async def erase(self, agent: AgentKey) -> int:
        for channel in [c for c in self._latest if c[0] == str(agent)]:
            del self._latest[channel]
        return await delete_matching(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))

    async def delete(self, agent: AgentKey, ids: Sequence[str]) -> int:
        """Delete this agent's entries with these ids; return how many were deleted."""
        return await delete_ids(self._client, self._collection, agent, ids)
