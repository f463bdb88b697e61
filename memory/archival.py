"""Archival memory: the agent's unbounded notes, in one Qdrant collection shared by all agents.

Inserts are checked for duplicates first: the same text up to case, spacing and punctuation, or a dense
cosine similarity of at least ``duplicate_threshold`` with an entry of the same agent. A duplicate is reported
(``InsertResult(stored=False, id=<existing>, duplicate_text=...)``) and not stored again.

Privacy: a PRIVATE insert is compared with all of the agent's entries; a PUBLIC insert only with public ones,
so a fact first learned in a DM is stored again (as public) when it is said in a channel.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from bot.events import AgentKey, Scope
from bot.memory_types import ArchivalEntry, InsertResult, MemoryEditError, SearchPage
from bot.ports import Embedder
from memory.qdrant import (
    DENSE,
    MAX_RESULTS,
    SPARSE,
    agent_filter,
    count_matching,
    delete_ids,
    delete_matching,
    export_records,
    match_field,
    scroll_all,
    search_page,
    to_rfc3339,
    to_sparse,
)
from memory.sparse import document_vector

DEFAULT_DUPLICATE_THRESHOLD = 0.92
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://membot.invalid/archival")
_WORDS = re.compile(r"\w+")
_APOSTROPHES = re.compile(r"['\u2019]")


def text_hash(text: str) -> str:
    """Hash of the text's words, casefolded: equal for texts differing only in case, spacing, punctuation."""
    words = _WORDS.findall(_APOSTROPHES.sub("", text.casefold()))
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


class QdrantArchivalMemory:
    """``ArchivalMemory`` on Qdrant: duplicate-checked inserts, hybrid search in pages of 5."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        collection: str,
        embedder: Embedder,
        *,
        duplicate_threshold: float = DEFAULT_DUPLICATE_THRESHOLD,
        max_results: int = MAX_RESULTS,
    ) -> None:
        self._client = client
        self._collection = collection
        self._embedder = embedder
        self._threshold = duplicate_threshold
        self._max_results = max_results

    async def insert(self, entry: ArchivalEntry) -> InsertResult:
        text = entry.text.strip()
        if not text:
            raise MemoryEditError("archival_memory_insert failed: content is empty. Pass the text to remember.")
        digest = text_hash(text)
        visible = agent_filter(entry.agent, entry.scope)
        same_text, _ = await self._client.scroll(
            self._collection,
            scroll_filter=agent_filter(entry.agent, entry.scope, [match_field("text_hash", digest)]),
            limit=1,
            with_payload=True,
        )
        if same_text:
            return _duplicate(same_text[0])
        dense = (await self._embedder.embed([text]))[0]
        near = await self._client.query_points(
            self._collection,
            query=dense,
            using=DENSE,
            query_filter=visible,
            limit=1,
            score_threshold=self._threshold,
            with_payload=True,
        )
        if near.points:
            return _duplicate(near.points[0])
        point_id = str(uuid.uuid5(_NAMESPACE, f"{entry.agent}|{entry.scope.value}|{digest}"))
        payload = {
            "agent": str(entry.agent),
            "text": text,
            "timestamp": to_rfc3339(entry.timestamp),
            "scope": entry.scope.value,
            "source": entry.source,
            "text_hash": digest,
        }
        point = models.PointStruct(
            id=point_id, vector={DENSE: dense, SPARSE: to_sparse(document_vector(text))}, payload=payload
        )
        await self._client.upsert(self._collection, [point], wait=True)
        return InsertResult(id=point_id, stored=True)

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage:
        """Entries matching ``query`` by meaning or words, best first; ``total`` counts at most ``max_results``."""
        return await search_page(
            self._client,
            self._collection,
            self._embedder,
            function="archival_memory_search",
            agent=agent,
            query=query,
            page=page,
            context_scope=context_scope,
            max_results=self._max_results,
        )

    async def count(self, agent: AgentKey) -> int:
        return await count_matching(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        records = await scroll_all(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))
        return export_records("archival", records)

    async def erase(self, agent: AgentKey) -> int:
        return await delete_matching(self._client, self._collection, agent_filter(agent, Scope.PRIVATE))

    async def delete(self, agent: AgentKey, ids: Sequence[str]) -> int:
        """Delete this agent's entries with these ids; return how many were deleted."""
        return await delete_ids(self._client, self._collection, agent, ids)


def _duplicate(point: models.ScoredPoint | models.Record) -> InsertResult:
    return InsertResult(id=str(point.id), stored=False, duplicate_text=str((point.payload or {}).get("text", "")))
