"""Recall memory: every message ever exchanged, in one Qdrant collection shared by all agents.

Each message is indexed for search as ``memory.qdrant.indexing`` describes (speaker-aware text, previous-message
context, attachment text for keywords); the payload keeps the message exactly as it was said.

With an outbox (how the app runs), ``add`` only stores the messages in Redis and the background indexer
(``memory.qdrant.indexer``) embeds and upserts them; every read of an agent's recall first waits until that agent's
messages are indexed, so a search always sees what was said, and ``count`` adds the ones still waiting. While the
indexer is backing off after failures (a full disk, an embeddings outage: ``memory.qdrant.indexer_health``), reads
do not wait: they see what is indexed at once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import PAGE_SIZE, Fence, RecallEntry, SearchHit, SearchPage
from bot.core.ports import Embedder
from memory.qdrant.backend import Condition, VectorCollection, VectorPoint
from memory.qdrant.indexer_health import IndexerHealth
from memory.qdrant.indexing import CONTEXT_GAP, contextualize, dense_text, recall_point_id, sparse_text
from memory.qdrant.search import (
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
)
from memory.qdrant.sparse import document_vector
from memory.qdrant.store import MAX_RESULTS
from memory.redis.counts import MemoryCounts
from memory.redis.outbox import RecallOutbox

log = logging.getLogger(__name__)

_REMEMBERED_CHANNELS = 4096  # channels whose latest message id is kept in memory (saves a filtered scroll)


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
        collection: VectorCollection,
        embedder: Embedder,
        *,
        max_results: int = MAX_RESULTS,
        mode: SearchMode = "hybrid",
        outbox: RecallOutbox | None = None,
        counts: MemoryCounts | None = None,
        catch_up_seconds: float = 10.0,
        indexer_health: IndexerHealth | None = None,
    ) -> None:
        self._outbox = outbox
        self._indexer_health = indexer_health
        self._counts = counts
        self._catch_up_seconds = catch_up_seconds
        self._collection = collection
        self._embedder = embedder
        self._max_results = max_results
        self._mode: SearchMode = mode
        self._latest: OrderedDict[tuple[str, str], tuple[datetime, str]] = OrderedDict()
        self._gave_up: dict[str, float] = {}  # agent -> when a catch-up last gave up (monotonic)

    async def add(self, entries: Sequence[RecallEntry], *, fence: Fence | None = None) -> None:
        """Store messages (blank texts are skipped): into the outbox when there is one, else indexed now.

        ``fence`` is checked by the outbox (LockLost when the turn lost its lock); without an outbox (tests) it is
        not checked."""
        entries = [e for e in entries if e.text.strip()]
        if self._outbox is not None:
            await self._outbox.put(entries, fence=fence)
        else:
            await self.index(entries)

    async def index(self, entries: Sequence[RecallEntry]) -> None:
        """Embed and upsert messages (one embedding batch, one upsert); retries are idempotent.

        Each message's dense vector takes in the one before it in its channel (from this batch or the store). A
        message stored again (with its attachments described) replaces the one before it in the batch.
        """
        entries = list({recall_point_id(e): e for e in entries if e.text.strip()}.values())
        if not entries:
            return
        ids = [recall_point_id(e) for e in entries]
        own = await self._embedder.embed([dense_text(e.author, e.text) for e in entries])
        channels: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i in sorted(range(len(entries)), key=lambda i: as_utc(entries[i].timestamp)):
            channels[(str(entries[i].agent), entries[i].channel)].append(i)
        vectors = list(own)
        latest: dict[tuple[AgentKey, str], tuple[datetime, str]] = {}
        for order in channels.values():
            first = entries[order[0]]
            previous = await self._previous(first, exclude={ids[i] for i in order})
            mixed = contextualize([own[i] for i in order], [as_utc(entries[i].timestamp) for i in order], previous)
            for i, vector in zip(order, mixed, strict=True):
                vectors[i] = vector
            latest[(first.agent, first.channel)] = (as_utc(entries[order[-1]].timestamp), ids[order[-1]])
        points = [
            VectorPoint(
                point_id,
                vector,
                document_vector(sparse_text(entry.author, entry.text, entry.attachment_text)),
                _payload(entry),
            )
            for point_id, entry, vector in zip(ids, entries, vectors, strict=True)
        ]
        existing: set[str] = set()
        if self._counts is not None:  # only new points are counted; a retried batch overwrites its own
            existing = {r.id for r in await self._collection.retrieve(ids, payload=False)}
        try:
            await self._collection.upsert(points)
        except Exception:
            if self._counts is not None:  # a store may have taken part of the batch: count the ones it took
                stored = {r.id for r in await self._collection.retrieve(ids, payload=False)}
                await self._count_new(entries, ids, existing | (set(ids) - stored))
            raise
        for (agent_key, channel), (moment, point_id) in latest.items():
            self._remember((str(agent_key), channel), moment, point_id)
        if self._outbox is not None:
            await self._outbox.set_latest(latest)
        await self._count_new(entries, ids, existing)

    async def _count_new(self, entries: Sequence[RecallEntry], ids: Sequence[str], skip: set[str]) -> None:
        """Add the entries whose point ids are not in ``skip`` to their agents' counts (when counts are kept)."""
        if self._counts is None:
            return
        new: dict[AgentKey, list[Scope]] = defaultdict(list)
        for entry, point_id in zip(entries, ids, strict=True):
            if point_id not in skip:
                new[entry.agent].append(entry.scope)
        for agent, scopes in new.items():
            await self._counts.add(agent, "recall", scopes)

    def _remember(self, channel: tuple[str, str], moment: datetime, point_id: str) -> None:
        known = self._latest.get(channel)
        if known is None or moment >= known[0]:
            self._latest[channel] = (moment, point_id)
            self._latest.move_to_end(channel)
            while len(self._latest) > _REMEMBERED_CHANNELS:
                self._latest.popitem(last=False)

    async def _previous(self, entry: RecallEntry, exclude: set[str]) -> tuple[datetime, list[float]] | None:
        """Time and stored dense vector of the latest message in ``entry``'s channel within CONTEXT_GAP before it.

        The latest message indexed in the channel is known by id (kept in this process, and with an outbox in
        Redis too), so its vector is one fetch by id. Without an outbox, a channel this process has not seen is
        searched for (a filtered scroll: O(points) in embedded Qdrant, which is why the app always has one).
        """
        moment = as_utc(entry.timestamp)
        channel = (str(entry.agent), entry.channel)
        known = self._latest.get(channel)
        if known is None and self._outbox is not None:
            known = await self._outbox.latest(entry.agent, entry.channel)
        if known is not None and known[0] <= moment and known[1] not in exclude:
            if moment - known[0] > CONTEXT_GAP:
                return None
            found = await self._collection.retrieve([known[1]], payload=False, dense=True)
            if found and found[0].dense is not None:
                return known[0], found[0].dense
        if self._outbox is not None:
            return None
        conditions: list[Condition] = [match_field("channel", entry.channel), time_range(moment - CONTEXT_GAP, moment)]
        records, _ = await self._collection.scroll(
            agent_filter(entry.agent, Scope.PRIVATE, conditions),
            order="desc",
            limit=len(exclude) + 1,
            payload=["timestamp"],
            dense=True,
        )
        for record in records:
            if record.id not in exclude and record.dense is not None:
                return from_rfc3339(str(record.payload["timestamp"])), record.dense
        return None

    async def search(self, agent: AgentKey, query: str, page: int, context_scope: Scope) -> SearchPage:
        """Messages matching ``query`` by meaning or words, best first; ``total`` counts at most ``max_results``."""
        await self._catch_up(agent)
        return await search_page(
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
        await self._catch_up(agent)
        start, end = sorted((as_utc(start), as_utc(end)))
        query_filter = agent_filter(agent, context_scope, [time_range(start, end)])
        total = await count_matching(self._collection, query_filter)
        if page * PAGE_SIZE >= total:
            return page_of([], page, total)
        records, _ = await self._collection.scroll(query_filter, order="asc", limit=(page + 1) * PAGE_SIZE)
        return page_of(records, page, total)

    async def count(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> int:
        """How many messages a search from ``context_scope`` could find (only public ones from PUBLIC).

        Kept in Redis when there is a ``MemoryCounts`` (see ``memory.redis.counts``); for a private context the
        messages still waiting in the outbox are included.
        """
        indexed = (
            await self._counts.get(agent, "recall", context_scope)
            if self._counts is not None
            else await count_matching(self._collection, agent_filter(agent, context_scope))
        )
        if self._outbox is None or context_scope == Scope.PUBLIC:
            return indexed
        return indexed + await self._outbox.pending(agent)

    async def _catch_up(self, agent: AgentKey) -> None:
        """Wait until the background indexer has indexed ``agent``'s messages (bounded; logged if it gives up).

        Not while the indexer is backing off: the read then goes on at once with what is indexed. Having given up
        (the embedder is down, say), it does not wait again for ``catch_up_seconds``: a forget or a turn that reads
        recall several times during an outage waits once, not once per read.
        """
        if self._outbox is None:
            return
        key = str(agent)
        gave_up = self._gave_up.get(key)
        recently = gave_up is not None and time.monotonic() - gave_up < self._catch_up_seconds
        deadline = time.monotonic() + (0.0 if recently else self._catch_up_seconds)
        while not self._indexer_backing_off():
            left = max(0.0, deadline - time.monotonic())
            if await self._outbox.wait_indexed(agent, within=min(left, 0.25) if self._indexer_health else left):
                self._gave_up.pop(key, None)
                return
            if time.monotonic() >= deadline:
                if not recently:
                    self._gave_up[key] = time.monotonic()
                    log.warning("recall read before the agent's newest messages were indexed", extra={"agent": key})
                return
        log.info("recall read while the indexer backs off: newest messages may be missing", extra={"agent": key})

    def _indexer_backing_off(self) -> bool:
        return self._indexer_health is not None and self._indexer_health.backing_off

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        await self._catch_up(agent)
        records = await scroll_all(self._collection, agent_filter(agent, Scope.PRIVATE))
        return export_records("recall", records)

    async def erase(self, agent: AgentKey) -> int:
        """Remove every message of ``agent``: first from the outbox (waiting, claimed by an indexer, dead letters;
        no indexer writes them afterwards, see ``memory.qdrant.indexer``), then from Qdrant. Works during an embeddings
        outage: nothing waits for the indexer."""
        removed = await self._outbox.erase(agent) if self._outbox is not None else set()
        for channel in [c for c in self._latest if c[0] == str(agent)]:
            del self._latest[channel]
        mine = agent_filter(agent, Scope.PRIVATE)
        # the point ids, so a message both indexed and still in the outbox is counted once
        removed.update(r.id for r in await scroll_all(self._collection, mine, payload=False))
        await delete_matching(self._collection, mine)
        if self._counts is not None:
            await self._counts.forget(agent, "recall")
        return len(removed)

    async def delete(self, agent: AgentKey, ids: Sequence[str]) -> int:
        """Delete this agent's messages with these point ids, indexed or still in the outbox; no indexer writes
        them again. Return how many were deleted."""
        waiting = await self._outbox.forget(agent, ids) if self._outbox is not None else 0
        return waiting + await self._delete_points(agent, ids)

    async def discard(self, entries: Sequence[RecallEntry]) -> None:
        """Undo ``index`` for these entries (erased or forgotten while being indexed): points, counts, pointers."""
        by_agent: dict[AgentKey, list[str]] = defaultdict(list)
        for entry in entries:
            by_agent[entry.agent].append(recall_point_id(entry))
        for agent, ids in by_agent.items():
            await self._delete_points(agent, ids)

    async def _delete_points(self, agent: AgentKey, ids: Sequence[str]) -> int:
        scopes = await delete_ids(self._collection, agent, ids)
        if self._counts is not None:
            await self._counts.add(agent, "recall", scopes, sign=-1)
        gone = set(ids)
        for channel, (_, point_id) in list(self._latest.items()):
            if point_id in gone:
                del self._latest[channel]
        if self._outbox is not None:
            await self._outbox.unset_latest(agent, ids)
        return len(scopes)

    async def waiting(self, agent: AgentKey, context_scope: Scope = Scope.PRIVATE) -> list[SearchHit]:
        """The agent's messages not yet searchable (still in the outbox, e.g. during an embeddings outage), as far
        as a context of ``context_scope`` may see them."""
        if self._outbox is None:
            return []
        return [
            SearchHit(
                recall_point_id(e),
                e.text,
                e.timestamp,
                0.0,
                role=e.role,
                author=e.author,
                attachment_text=e.attachment_text,
            )
            for e in await self._outbox.entries_of(agent)
            if context_scope is Scope.PRIVATE or e.scope is Scope.PUBLIC
        ]
