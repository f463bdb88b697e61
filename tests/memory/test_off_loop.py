"""Qdrant Edge calls never run on the event loop: searches and upserts on a large store run in the backend's worker
threads while a concurrent coroutine keeps ticking.

The store holds ``MEMBOT_OFF_LOOP_POINTS`` points (default 20,000 of 384 dims across 1,000 agents: the test takes
about 10 s here; with 100,000 about 35 s, so that size is opt-in). Searches are filtered by agent, as membot's
always are. The test asserts structure (every shard call ran off the loop's thread) and only a generous bound on
the loop's lag; the measured lag is printed (``pytest -s``). Note: qdrant-edge-py 0.9.0 holds the GIL for much of a
search (a Python thread beside a searching one ran at about a third of its speed here), so a worker thread keeps
the loop going between searches' GIL slices, not at full speed: cheap (filtered) searches are what keep it smooth.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.events import AgentKey, Scope
from memory.qdrant.backend import VectorPoint
from memory.qdrant.edge_backend import THREAD_PREFIX, EdgeCollection
from memory.qdrant.search import agent_filter, hybrid_query, to_rfc3339
from memory.qdrant.sparse import document_vector, query_vector
from memory.qdrant.store import open_qdrant
from tests.memory.helpers import T0

POINTS = int(os.environ.get("MEMBOT_OFF_LOOP_POINTS", "20000"))
DIMS = 384
AGENTS = 1000
WORDS = ["tea", "lyon", "sister", "pottery", "guitar", "dog", "cat", "river", "paris", "book", "audit", "dentist"]


class ThreadRecorder:
    """Stands in front of the Edge shard (a third-party object) and records the thread of every call."""

    def __init__(self, shard: Any) -> None:
        self._shard = shard
        self.threads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._shard, name)

        def call(*args: Any) -> Any:
            self.threads.add(threading.current_thread().name)
            return method(*args)

        return call


def batches(rng: np.random.Generator, size: int = 2000) -> Iterator[list[VectorPoint]]:
    for start in range(0, POINTS, size):
        vectors = rng.standard_normal((min(size, POINTS - start), DIMS), dtype=np.float32).tolist()
        yield [
            VectorPoint(
                str(uuid.uuid4()),
                vector,
                document_vector(f"{WORDS[n % len(WORDS)]} and {WORDS[(n * 7) % len(WORDS)]} {n}"),
                {"agent": f"console:{n % AGENTS}", "scope": "private", "timestamp": to_rfc3339(T0), "text": str(n)},
            )
            for n, vector in enumerate(vectors, start)
        ]


async def ticks(stop: asyncio.Event, lags: list[float], every: float = 0.002) -> None:
    """Sleep ``every`` seconds again and again; record how late each wake-up was."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(every)
        lags.append(time.perf_counter() - started - every)


async def test_searches_and_upserts_run_off_the_event_loop(data_dir: Path) -> None:
    store = await open_qdrant(path=data_dir / "qdrant", dimensions=DIMS, embedder_name="random")
    try:
        rng = np.random.default_rng(7)
        for batch in batches(rng):
            await store.recall.upsert(batch)
        assert await store.recall.count(()) == POINTS
        collection = store.recall
        assert isinstance(collection, EdgeCollection)
        recorder = ThreadRecorder(collection.shard)
        collection.shard = recorder  # type: ignore[assignment]
        more = next(batches(rng, 500))[:500]  # made before the ticks start: building points is the test's own work
        queries = [rng.standard_normal(DIMS, dtype=np.float32).tolist() for _ in range(200)]
        stop, lags = asyncio.Event(), []
        ticker = asyncio.create_task(ticks(stop, lags))
        await asyncio.sleep(0.05)
        searched = []
        for n, query in enumerate(queries):
            where = agent_filter(AgentKey.parse(f"console:{n * 25 % AGENTS}"), Scope.PRIVATE)
            started = time.perf_counter()
            await hybrid_query(collection, dense=query, sparse=query_vector("tea sister"), query_filter=where)
            searched.append(time.perf_counter() - started)
        await collection.upsert(more)
        stop.set()
        await ticker
    finally:
        await store.close()
    assert recorder.threads and all(name.startswith(THREAD_PREFIX) for name in recorder.threads), recorder.threads
    assert threading.main_thread().name not in recorder.threads
    lag_ms = sorted(lag * 1000 for lag in lags)
    print(
        f"\n{POINTS} points: search p50 {statistics.median(searched) * 1000:.1f} ms, max {max(searched) * 1000:.1f} ms;"
        f" loop lag over {len(lag_ms)} ticks p50 {statistics.median(lag_ms):.2f} ms, "
        f"p99 {lag_ms[int(0.99 * (len(lag_ms) - 1))]:.2f} ms, max {lag_ms[-1]:.2f} ms"
    )
    assert lag_ms[-1] < 1000  # generous: a search on the loop would stall it for the whole search, every time
