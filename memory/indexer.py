"""The background indexer: drains the recall outbox into Qdrant in batches, off the path of every turn.

One task per process reads the outbox through the consumer group, embeds and upserts each batch (the embedder
runs in a worker thread), then acknowledges it. A batch is acknowledged only after Qdrant took it, so a process
that stops mid-batch loses nothing: its claimed entries are claimed again, by itself on the next start when it is
the only process (embedded Qdrant) or by any process after ``lease_seconds``. Point ids are deterministic, so an
entry indexed twice is stored once. A batch that keeps failing is retried entry by entry; an entry that still
keeps failing while others index fine goes to the dead-letter stream, where ``membot doctor`` reports it.

Erased and forgotten entries are never written back (``_try_index``). An erase (``RecallOutbox.erase``, one
script) moves the agent's epoch on and removes its entries from Redis; the agent's points are then deleted from
Qdrant. An indexer of any process may hold such an entry: claimed before the erase, even embedded. So it checks
the entries' epochs (and forgotten point ids) twice: right before indexing, dropping stale entries, and right after
the upsert, deleting again what it wrote (``discard``) when an erase came in between. Why that is enough: if the
erase's script ran before the second check, the check sees it and deletes the points; if it ran after, the upsert
had finished (``wait=True``) before the erase deleted the agent's points from Qdrant, so that delete removes them.
Either way no erased entry stays; this relies on every erase and forget changing Redis before it deletes from
Qdrant (``QdrantRecallMemory.erase`` and ``delete`` do). A failed ``discard`` fails the attempt: the retry finds the
entries stale at the first check and discards them again (deleting by id is idempotent). The app passes
``QdrantRecallMemory.discard``; without one, only the first check is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.memory_types import RecallEntry
from memory.outbox import OutboxItem, RecallOutbox
from memory.redis_client import ANY_REDIS_ERROR

log = logging.getLogger(__name__)

POISON_ROUNDS = 3  # lease rounds an entry may fail alone (while others index fine) before it is set aside
IndexBatch = Callable[[Sequence[RecallEntry]], Awaitable[None]]


async def _nothing_to_discard(entries: Sequence[RecallEntry]) -> None:
    return None


@dataclass
class IndexerStats:
    indexed: int = 0
    batches: int = 0
    failures: int = 0
    buried: int = 0


class RecallIndexer:
    """Runs ``index`` over the outbox's entries until closed (searches wait on ``RecallOutbox.wait_indexed``)."""

    def __init__(
        self,
        outbox: RecallOutbox,
        index: IndexBatch,
        *,
        exclusive: bool,
        discard: IndexBatch = _nothing_to_discard,
        batch_size: int = 64,
        lease_seconds: float = 60.0,
        max_attempts: int = 4,
        retry_seconds: float = 0.5,
        linger_seconds: float = 0.05,
    ) -> None:
        self._outbox = outbox
        self._index = index
        self._discard = discard  # deletes what ``index`` wrote for these entries (points, counts, pointers)
        self._exclusive = exclusive
        self._batch_size = batch_size
        self._lease_ms = int(lease_seconds * 1000)
        self._max_attempts = max_attempts
        self._retry_seconds = retry_seconds
        self._linger = linger_seconds
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failed_rounds: dict[str, int] = {}
        self.stats = IndexerStats()

    async def start(self) -> None:
        await self._outbox.ensure_group()
        self._task = asyncio.create_task(self._run(), name="recall-indexer")

    async def close(self, within: float = 10.0) -> None:
        """Index what is waiting (for at most ``within`` seconds), then stop; the rest stays in Redis."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        try:
            await asyncio.wait_for(asyncio.shield(task), within)
        except TimeoutError:
            log.warning("recall indexer stopped before the outbox was empty; the rest is indexed on the next start")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(*ANY_REDIS_ERROR):
            await self._outbox.close_consumer(self._consumer)

    async def _run(self) -> None:
        reclaim_at = 0.0
        first = True
        while True:
            try:
                if time.monotonic() >= reclaim_at:
                    idle = 0 if first and self._exclusive else self._lease_ms
                    items = await self._outbox.reclaim(self._consumer, idle, self._batch_size)
                    if items:
                        await self._process(items)
                        continue
                    first = False
                    reclaim_at = time.monotonic() + self._lease_ms / 2000
                items = await self._outbox.read(self._consumer, self._batch_size, None if self._stopping else 200)
                if items and not self._stopping and len(items) < self._batch_size:
                    # linger: the turn that wrote these is usually still running (its reply comes next); index
                    # after it, in one batch, instead of competing with it for the CPU
                    await asyncio.sleep(self._linger)
                    items += await self._outbox.read(self._consumer, self._batch_size - len(items), None)
                if items:
                    await self._process(items)
                elif self._stopping:
                    return
            except ANY_REDIS_ERROR as exc:
                if self._stopping:
                    return
                log.warning("recall indexer cannot reach Redis; retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(self._retry_seconds)

    async def _process(self, items: list[OutboxItem]) -> None:
        unreadable = [item for item in items if item.entry is None]
        if unreadable:  # kept as dead letters, unless their agent was erased meanwhile
            erased = await self._outbox.stale(unreadable)
            await self._outbox.ack([item for item in unreadable if item.stream_id in erased])
            unreadable = [item for item in unreadable if item.stream_id not in erased]
        if unreadable:
            log.warning("unreadable recall outbox entries moved to dead letters", extra={"count": len(unreadable)})
            await self._outbox.bury(unreadable, "unreadable entry")
            self.stats.buried += len(unreadable)
        readable = [item for item in items if item.entry is not None]
        if readable:
            await self._index_with_retries(readable)  # False when stopping: left claimed, taken again later

    async def _index_with_retries(self, items: list[OutboxItem]) -> bool:
        """Index and acknowledge ``items``; False when stopping interrupted the retries.

        A batch that keeps failing is tried entry by entry, each with its own retries. Entries that still fail
        while others of their batch succeed stay claimed and come back after the lease; one that does so
        ``POISON_ROUNDS`` times is moved to the dead-letter stream. When every entry fails (the store or the
        embedder is down) nothing is counted against them: an outage never makes an entry a dead letter.
        """
        if await self._retrying(items):
            return True
        if self._stopping:
            return False
        failed = [item for item in items if not await self._retrying([item])] if len(items) > 1 else items
        if len(failed) == len(items):
            log.error("recall indexing keeps failing; entries stay in the outbox", extra={"count": len(failed)})
            return True
        for item in failed:
            self._failed_rounds[item.stream_id] = self._failed_rounds.get(item.stream_id, 0) + 1
        poison = [item for item in failed if self._failed_rounds[item.stream_id] >= POISON_ROUNDS]
        if poison:
            await self._outbox.bury(poison, "indexing kept failing")
            self.stats.buried += len(poison)
            for item in poison:
                self._failed_rounds.pop(item.stream_id, None)
            log.error("recall entries could not be indexed; kept as dead letters", extra={"count": len(poison)})
        return True

    async def _retrying(self, items: list[OutboxItem]) -> bool:
        for attempt in range(self._max_attempts):
            if await self._try_index(items):
                return True
            if self._stopping:
                return False
            await asyncio.sleep(self._retry_seconds * 2**attempt)
        return False

    async def _try_index(self, items: list[OutboxItem]) -> bool:
        try:
            stale = await self._outbox.stale(items)  # erased or forgotten since they were stored: not written
            if stale:
                await self._discard([i.entry for i in items if i.stream_id in stale and i.entry is not None])
            live = [item for item in items if item.stream_id not in stale]
            if live:
                await self._index([item.entry for item in live if item.entry is not None])
                erased = await self._outbox.stale(live)  # an erase ran while this batch was being indexed
                if erased:
                    await self._discard([i.entry for i in live if i.stream_id in erased and i.entry is not None])
        except Exception as exc:  # any store or embedder failure: retried, never dropped
            self.stats.failures += 1
            log.warning("recall indexing failed", extra={"error": type(exc).__name__, "count": len(items)})
            return False
        await self._outbox.ack(items)
        for item in items:
            self._failed_rounds.pop(item.stream_id, None)
        self.stats.indexed += len(items)
        self.stats.batches += 1
        return True
