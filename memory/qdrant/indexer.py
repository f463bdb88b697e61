"""The background indexer: drains the recall outbox into Qdrant in batches, off the path of every turn.

One task per process reads the outbox through the consumer group, embeds and upserts each batch (the embedder
runs in a worker thread), then acknowledges it. A batch is acknowledged only after Qdrant took it, so a process
that stops mid-batch loses nothing: its claimed entries are claimed again, by itself on the next start when it is
the only process (embedded Qdrant) or by any process after ``lease_seconds``. Point ids are deterministic, so an
entry indexed twice is stored once. A batch that keeps failing is retried entry by entry; an entry that still
keeps failing while others index fine goes to the dead-letter stream, where ``membot doctor`` reports it.

Failures back off exponentially (``memory.qdrant.indexer_health``): the batch in hand is tried again after 0.5 s, 1 s,
2 s ... up to 30 s, with one warning per step, until the store or the embedder is back (a full disk, an embeddings
outage); the entries wait in Redis meanwhile. While draining at shutdown it backs off the same way, and stops as
soon as the next try would come after the drain's deadline.
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

from redis.exceptions import ResponseError

from bot.core.memory_types import RecallEntry
from bot.core.tasks import cancel_requested, stop_task
from memory.qdrant.indexer_health import IndexerHealth
from memory.redis.client import ANY_REDIS_ERROR
from memory.redis.outbox import OutboxItem, RecallOutbox

log = logging.getLogger(__name__)

POISON_ROUNDS = 3  # lease rounds an entry may fail alone (while others index fine) before it is set aside
OUTAGE_PROBES = 3  # when this many entries of a failing batch also fail alone, first of all, it is an outage
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
    """Runs ``index`` over the outbox's entries until closed (searches wait on ``RecallOutbox.wait_indexed``).

    ``health`` (shared with ``QdrantRecallMemory``, which then does not wait while it backs off) sets the backoff
    delays; without it they run from ``retry_seconds`` to ``max_backoff_seconds``.
    """

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
        max_backoff_seconds: float = 30.0,
        linger_seconds: float = 0.05,
        health: IndexerHealth | None = None,
    ) -> None:
        self._outbox = outbox
        self._index = index
        self._discard = discard  # deletes what ``index`` wrote for these entries (points, counts, pointers)
        self._exclusive = exclusive
        self._batch_size = batch_size
        self._lease_ms = int(lease_seconds * 1000)
        self._max_attempts = max_attempts
        self.health = health or IndexerHealth(retry_seconds, max(retry_seconds, max_backoff_seconds))
        self._linger = linger_seconds
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop = asyncio.Event()
        self._deadline = float("inf")
        self._last_error: Exception | None = None
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
        self._deadline = time.monotonic() + within
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), within)
        except TimeoutError:
            log.warning("recall indexer stopped before the outbox was empty; the rest is indexed on the next start")
        finally:
            if not task.done():
                await stop_task(task, within=5.0)
        with contextlib.suppress(*ANY_REDIS_ERROR):
            await self._outbox.close_consumer(self._consumer)

    async def _run(self) -> None:
        reclaim_at = 0.0
        first = True
        while not cancel_requested():  # see bot.core.tasks
            try:
                if time.monotonic() >= reclaim_at:
                    idle = 0 if first and self._exclusive else self._lease_ms
                    items = await self._outbox.reclaim(self._consumer, idle, self._batch_size)
                    if items:
                        if not await self._process(items):
                            return
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
                    if not await self._process(items):
                        return
                elif self._stopping:
                    return
                else:
                    self._recovered()  # nothing waits to be indexed
            except ANY_REDIS_ERROR as exc:
                if _group_gone(exc) and not self._stopping:  # Redis restarted without its data: nothing to wait for
                    log.warning("the recall outbox's consumer group is gone (Redis lost its data); creating it again")
                    with contextlib.suppress(*ANY_REDIS_ERROR):
                        await self._outbox.ensure_group()
                        continue
                if self._stopping or not await self._pause(exc, "cannot reach Redis"):
                    return

    async def _process(self, items: list[OutboxItem]) -> bool:
        """Index ``items`` (dead-lettering unreadable ones); False when stopping interrupted it."""
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
            return await self._index_with_retries(readable)  # False when stopping: left claimed, taken again later
        return True

    async def _index_with_retries(self, items: list[OutboxItem]) -> bool:
        """Index and acknowledge ``items``, backing off between tries; False when stopping interrupted it.

        After every ``max_attempts`` failed tries of the whole batch, new entries join it (so that one bad entry
        cannot hold up the others) and its entries are tried one by one. When some index fine and others still
        fail, the failing ones stay claimed and come back after the lease; one that does so ``POISON_ROUNDS`` times
        is moved to the dead-letter stream. When the first entries all fail alone too (the store or the embedder is
        down), nothing is counted against them: an outage never makes an entry a dead letter, and the batch is
        tried again after the next backoff step.
        """
        attempts = 0
        while not await self._try_index(items):
            attempts += 1
            if attempts % self._max_attempts == 0 and len(items) < self._batch_size and not self._stopping:
                items = items + await self._more(self._batch_size - len(items))  # a lone bad entry blocks no one
            if attempts % self._max_attempts == 0 and len(items) > 1:
                failed = await self._one_by_one(items)
                if failed is not None:
                    self._recovered()
                    await self._suspect(failed)
                    return True
            error = self._last_error or RuntimeError("indexing failed")
            if not await self._pause(error, "recall indexing failed; the entries wait in Redis"):
                return False
        self._recovered()
        return True

    async def _more(self, count: int) -> list[OutboxItem]:
        """Claim up to ``count`` new entries (without waiting); unreadable ones go to the dead letters at once."""
        items = await self._outbox.read(self._consumer, count, None)
        readable = [item for item in items if item.entry is not None]
        if len(readable) < len(items):
            await self._process([item for item in items if item.entry is None])
        return readable

    async def _one_by_one(self, items: list[OutboxItem]) -> list[OutboxItem] | None:
        """Try each entry alone, newest first (a batch that keeps failing gains new entries at its end); the ones
        that failed, or None when it looks like an outage (the first ``OUTAGE_PROBES`` tried, or all, failed)."""
        failed: list[OutboxItem] = []
        for tried, item in enumerate(reversed(items), start=1):
            if not await self._try_index([item]):
                failed.append(item)
                if len(failed) == tried == OUTAGE_PROBES or self._stopping:
                    return None
        return None if len(failed) == len(items) else failed

    async def _suspect(self, failed: list[OutboxItem]) -> None:
        """Count a round against entries that failed alone while others indexed; bury the persistent ones."""
        for item in failed:
            self._failed_rounds[item.stream_id] = self._failed_rounds.get(item.stream_id, 0) + 1
        poison = [item for item in failed if self._failed_rounds[item.stream_id] >= POISON_ROUNDS]
        if poison:
            await self._outbox.bury(poison, "indexing kept failing")
            self.stats.buried += len(poison)
            for item in poison:
                self._failed_rounds.pop(item.stream_id, None)
            log.error("recall entries could not be indexed; kept as dead letters", extra={"count": len(poison)})

    async def _pause(self, exc: BaseException, what: str) -> bool:
        """Wait out the next backoff step (one warning per step); False when stopping cannot wait that long."""
        delay = self.health.failed(exc)
        resume = time.monotonic() + delay
        if self._stopping and resume > self._deadline:
            log.warning(f"{what}; stopping now, the rest is indexed on the next start", extra=self._failing())
            return False
        log.warning(f"{what}; next try in {delay:.1f} s", extra=self._failing())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)  # close() wakes it: the deadline may be too near
        if self._stopping and resume > self._deadline:
            log.warning(f"{what}; stopping now, the rest is indexed on the next start", extra=self._failing())
            return False
        await asyncio.sleep(max(0.0, resume - time.monotonic()))
        return True

    def _failing(self) -> dict[str, object]:
        since = self.health.failing_since
        return {"reason": self.health.reason, "since": since.isoformat() if since else None}

    def _recovered(self) -> None:
        lasted = self.health.recovered()
        if lasted is not None:
            log.warning("recall indexing works again", extra={"after_seconds": round(lasted, 1)})

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
            self._last_error = exc  # logged once per backoff step by _pause
            log.debug("recall indexing failed", extra={"error": type(exc).__name__, "count": len(items)})
            return False
        await self._outbox.ack(items)
        for item in items:
            self._failed_rounds.pop(item.stream_id, None)
        self.stats.indexed += len(items)
        self.stats.batches += 1
        return True


def _group_gone(exc: BaseException) -> bool:
    """Whether Redis answered that the outbox's stream or consumer group does not exist (NOGROUP)."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")
