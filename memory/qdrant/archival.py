"""Archival memory: the agent's unbounded notes, in one Qdrant collection shared by all agents.

Inserts are checked for duplicates first: the same text up to case, spacing and punctuation, or a dense
cosine similarity of at least ``duplicate_threshold`` with an entry of the same agent. A duplicate is reported
(``InsertResult(stored=False, id=<existing>, duplicate_text=...)``) and not stored again.

Privacy: a PRIVATE insert is compared with all of the agent's entries; a PUBLIC insert only with public ones,
so a fact first learned in a DM is stored again (as public) when it is said in a channel.

An insert that cannot be stored (the data disk is full or read-only, the Qdrant server or the embeddings API is
down) fails with a ``MemoryEditError`` the model reads as the function's result, never with a crash of the turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import ArchivalEntry, DuplicatePair, Fence, InsertResult, MemoryEditError, SearchPage
from bot.core.ports import Embedder
from memory.qdrant.backend import StoredPoint, VectorCollection, VectorPoint, VectorSearch
from memory.qdrant.search import (
    agent_filter,
    count_matching,
    delete_ids,
    delete_matching,
    export_records,
    match_field,
    scroll_all,
    search_page,
    to_hit,
    to_rfc3339,
)
from memory.qdrant.sparse import document_vector
from memory.qdrant.store import MAX_RESULTS
from memory.redis.counts import MemoryCounts
from memory.redis.fencing import Fencing
from memory.storage_faults import storage_problem

DEFAULT_DUPLICATE_THRESHOLD = 0.92
MAX_DUPLICATE_SCAN = 2000  # near_duplicates compares at most this many of an agent's newest entries
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
        collection: VectorCollection,
        embedder: Embedder,
        *,
        duplicate_threshold: float = DEFAULT_DUPLICATE_THRESHOLD,
        max_results: int = MAX_RESULTS,
        counts: MemoryCounts | None = None,
        fencing: Fencing | None = None,
        storage_dir: Path | None = None,
    ) -> None:
        self._fencing = fencing
        self._storage_dir = storage_dir  # the embedded store's directory, to tell a full or read-only disk
        self._collection = collection
        self._embedder = embedder
        self._threshold = duplicate_threshold
        self._max_results = max_results
        self._counts = counts

    async def insert(self, entry: ArchivalEntry, *, fence: Fence | None = None) -> InsertResult:
        """Store a note unless a near-identical one is stored. With a ``fence``, it is checked in Redis right before
        the upsert (LockLost when the turn lost its lock): Qdrant cannot check it atomically with the write."""
        text = entry.text.strip()
        if not text:
            raise MemoryEditError("archival_memory_insert failed: content is empty. Pass the text to remember.")
        digest = text_hash(text)
        visible = agent_filter(entry.agent, entry.scope)
        same_text, _ = await self._collection.scroll(
            agent_filter(entry.agent, entry.scope, [match_field("text_hash", digest)]), limit=1
        )
        if same_text:
            return _duplicate(same_text[0])
        try:
            dense = (await self._embedder.embed([text]))[0]
        except Exception as exc:  # the embeddings API is down: the model is told, the turn goes on
            raise MemoryEditError(
                f"the note was not stored: the embedding service is unavailable ({type(exc).__name__}). Tell the "
                "user it could not be saved now; insert it again later."
            ) from exc
        near = await self._collection.search(
            [VectorSearch("dense", dense, visible)], limit=1, score_threshold=self._threshold
        )
        if near:
            return _duplicate(near[0])
        point_id = str(uuid.uuid5(_NAMESPACE, f"{entry.agent}|{entry.scope.value}|{digest}"))
        payload = {
            "agent": str(entry.agent),
            "text": text,
            "timestamp": to_rfc3339(entry.timestamp),
            "scope": entry.scope.value,
            "source": entry.source,
            "text_hash": digest,
        }
        point = VectorPoint(point_id, dense, document_vector(text), payload)
        if self._fencing is not None:
            await self._fencing.check(fence, entry.agent)
        try:
            await self._collection.upsert([point])
        except Exception as exc:
            problem = storage_problem(exc, self._storage_dir)
            if problem is None and isinstance(exc, ResponseHandlingException | UnexpectedResponse):
                problem = f"the Qdrant server did not take it ({type(exc).__name__})"
            if problem is None:
                raise
            raise MemoryEditError(
                f"the note was not stored: {problem}. Tell the user it could not be saved now (the conversation "
                "itself is kept); insert it again later."
            ) from exc
        if self._counts is not None:
            await self._counts.add(entry.agent, "archival", [entry.scope])
        return InsertResult(id=point_id, stored=True)

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage:
        """Entries matching ``query`` by meaning or words, best first; ``total`` counts at most ``max_results``."""
        return await search_page(
            self._collection,
            self._embedder,
            function="archival_memory_search",
            agent=agent,
            query=query,
            page=page,
            context_scope=context_scope,
            max_results=self._max_results,
        )

    async def count(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> int:
        """How many entries a search from ``context_scope`` could find (only public ones from PUBLIC).

        Kept in Redis when there is a ``MemoryCounts`` (see ``memory.redis.counts``).
        """
        if self._counts is None:
            return await count_matching(self._collection, agent_filter(agent, context_scope))
        return await self._counts.get(agent, "archival", context_scope)

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        records = await scroll_all(self._collection, agent_filter(agent, Scope.PRIVATE))
        return export_records("archival", records)

    async def erase(self, agent: AgentKey) -> int:
        removed = await delete_matching(self._collection, agent_filter(agent, Scope.PRIVATE))
        if self._counts is not None:
            await self._counts.forget(agent, "archival")
        return removed

    async def delete(self, agent: AgentKey, ids: Sequence[str]) -> int:
        """Delete this agent's entries with these ids; return how many were deleted."""
        scopes = await delete_ids(self._collection, agent, ids)
        if self._counts is not None:
            await self._counts.add(agent, "archival", scopes, sign=-1)
        return len(scopes)

    async def near_duplicates(self, agent: AgentKey, threshold: float) -> list[DuplicatePair]:
        """Pairs of the agent's entries in the same scope with dense cosine >= ``threshold``, most similar first.

        Compares the newest ``MAX_DUPLICATE_SCAN`` entries all against all (in a worker thread).
        """
        stored = await scroll_all(self._collection, agent_filter(agent, Scope.PRIVATE), dense=True)
        records = [r for r in stored if r.dense is not None]
        records.sort(key=lambda r: str(r.payload.get("timestamp", "")), reverse=True)
        records = records[:MAX_DUPLICATE_SCAN]
        if len(records) < 2:
            return []
        vectors = [r.dense or [] for r in records]
        found = await asyncio.to_thread(_similar_pairs, vectors, threshold)
        pairs = [
            DuplicatePair(to_hit(records[i]), to_hit(records[j]), score)
            for i, j, score in found
            if records[i].payload.get("scope") == records[j].payload.get("scope")
        ]
        return sorted(pairs, key=lambda pair: pair.similarity, reverse=True)

    async def merge(self, agent: AgentKey, keep_id: str, drop_ids: Sequence[str], text: str) -> None:
        """Rewrite entry ``keep_id`` to ``text``, record the dropped entries (text and time) in its
        ``merged_from`` payload, and only then delete them: nothing is lost if this stops half way."""
        text = text.strip()
        if not text:
            raise MemoryEditError("merge failed: the merged text is empty.")
        found = await self._collection.retrieve([keep_id, *drop_ids])
        mine = {r.id: r for r in found if r.payload.get("agent") == str(agent)}
        if keep_id not in mine:
            raise MemoryEditError(f"merge failed: agent {agent} has no archival entry {keep_id}.")
        keep = mine[keep_id].payload
        dropped = [mine[i] for i in drop_ids if i in mine and i != keep_id]
        merged_from = list(keep.get("merged_from") or [])
        now = datetime.now(UTC)
        for record in dropped:
            payload = record.payload
            merged_from.extend(payload.get("merged_from") or [])
            merged_from.append(
                {
                    "id": record.id,
                    "text": payload.get("text", ""),
                    "timestamp": payload.get("timestamp"),
                    "merged_at": to_rfc3339(now),
                }
            )
        payload = {**keep, "text": text, "text_hash": text_hash(text), "merged_from": merged_from}
        dense = (await self._embedder.embed([text]))[0]
        await self._collection.upsert([VectorPoint(keep_id, dense, document_vector(text), payload)])
        scopes = await delete_ids(self._collection, agent, [r.id for r in dropped])
        if self._counts is not None:
            await self._counts.add(agent, "archival", scopes, sign=-1)


def _similar_pairs(vectors: list[list[float]], threshold: float) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose cosine similarity is at least ``threshold``."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0, 1.0, norms)
    scores = np.triu(unit @ unit.T, k=1)
    rows, cols = np.nonzero(scores >= threshold)
    return [(int(i), int(j), float(scores[i, j])) for i, j in zip(rows, cols, strict=True)]


def _duplicate(point: StoredPoint) -> InsertResult:
    return InsertResult(id=point.id, stored=False, duplicate_text=str(point.payload.get("text", "")))
