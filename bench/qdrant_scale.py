"""The embedded store at scale: Qdrant Edge with 10k, 100k and 1M recall entries across 1,000 agents.

Fills membot's recall collection (``ensure_collection``: the same dense + sparse/IDF config and payload indexes)
with synthetic points shaped like recall messages: random unit 384-dim dense vectors, BM25-style sparse vectors of
about 12 terms from a Zipf vocabulary of 50k terms, and a recall payload. One "large" agent holds 10 % of the
entries (a very active user); the other 999 share the rest (at 100k, about 90 each). Then, for each size:

- insert rate (points/s, batches of 2,000 through the backend's worker threads, as the indexer writes);
- hybrid search p50/p99 (membot's own ``hybrid_query``: dense + sparse prefetch, RRF, filtered to one agent, the
  call ``conversation_search`` makes, minus the query embedding) for a small agent and for the large one;
- start-up: closing the store and opening it again, until the first search answers;
- RSS of this process after loading, and the store's size on disk.

    .venv/bin/python -m bench.qdrant_scale [--sizes 10000 100000 1000000] [--queries 200] [--engine edge|local]

``--engine local`` measures qdrant-client's local mode, the embedded store before Qdrant Edge (slow: keep its sizes
at 10k-100k). Figures are printed, not asserted; run by hand (``deploy/SCALING.md`` has this machine's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from qdrant_client import AsyncQdrantClient

from adapters.console import console_agent
from bot.core.events import AgentKey, Scope
from memory.qdrant.backend import VectorBackend, VectorPoint
from memory.qdrant.client_backend import ClientBackend
from memory.qdrant.search import agent_filter, hybrid_query, to_rfc3339
from memory.qdrant.sparse import SparseTerms
from memory.qdrant.store import RECALL_KEYWORDS, ensure_collection, open_backend

DIMS = 384
VOCABULARY = 50_000
AGENTS = 1_000
LARGE_SHARE = 10  # every 10th entry belongs to the large agent
BATCH = 2_000
T0 = datetime(2024, 1, 1, tzinfo=UTC)
LARGE = console_agent("large")


def rss_mb() -> float:
    """Resident memory of this process (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(path: Path) -> float:
    """Allocated size on disk (sparse files count what they use)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20


def owner(i: int) -> AgentKey:
    return LARGE if i % LARGE_SHARE == 0 else console_agent(f"user{i % (AGENTS - 1)}")


class Synthetic:
    """Reproducible recall-shaped points."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(1, VOCABULARY + 1)
        weights = 1 / ranks
        self.term_cdf = np.minimum(np.cumsum(weights / weights.sum()), 1.0)
        self.term_cdf[-1] = 1.0

    def dense(self, n: int) -> np.ndarray:
        vectors = self.rng.standard_normal((n, DIMS)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def sparse(self, terms: int = 12) -> SparseTerms:
        ids = sorted({int(i) for i in np.searchsorted(self.term_cdf, self.rng.random(terms))})
        return SparseTerms(ids, [float(v) for v in self.rng.uniform(0.5, 1.6, len(ids))])

    def points(self, start: int, n: int) -> list[VectorPoint]:
        dense = self.dense(n)
        points = []
        for offset in range(n):
            i = start + offset
            agent = owner(i)
            payload = {
                "agent": str(agent),
                "platform": "console",
                "channel": f"c{i % 3}",
                "role": "user" if i % 2 else "assistant",
                "author": agent.user,
                "timestamp": to_rfc3339(T0 + timedelta(seconds=i)),
                "scope": Scope.PRIVATE.value,
                "message_id": None,
                "text": f"synthetic message {i} " + "lorem ipsum " * 8,
            }
            points.append(VectorPoint(str(uuid.UUID(int=i)), dense[offset].tolist(), self.sparse(), payload))
        return points


def open_store(engine: str, path: Path) -> VectorBackend:
    if engine == "edge":
        return open_backend(path=path)
    return ClientBackend(AsyncQdrantClient(path=str(path)), str(path))  # local mode, before Qdrant Edge


async def searches(backend: VectorBackend, data: Synthetic, agent: AgentKey, count: int) -> list[float]:
    recall = await backend.collection("recall")
    only = agent_filter(agent, Scope.PRIVATE)
    latencies = []
    for q in range(count + 3):  # the first three warm up
        dense, sparse = data.dense(1)[0].tolist(), data.sparse(4)
        began = time.perf_counter()
        await hybrid_query(recall, dense=dense, sparse=sparse, query_filter=only)
        if q >= 3:
            latencies.append((time.perf_counter() - began) * 1000)
    return sorted(latencies)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def measure(size: int, queries: int, root: Path, engine: str) -> dict[str, float]:
    """Load ``size`` points into a fresh store, time searches, then close and reopen it."""
    path = root / f"{engine}-{size}"
    data = Synthetic()
    before = rss_mb()
    backend = open_store(engine, path)
    try:
        await ensure_collection(backend, "recall", DIMS, "synthetic", RECALL_KEYWORDS)
        recall = await backend.collection("recall")
        load_s = 0.0  # upserts only: making the synthetic points is not counted
        for start in range(0, size, BATCH):
            batch = data.points(start, min(BATCH, size - start))
            started = time.perf_counter()
            await recall.upsert(batch)
            load_s += time.perf_counter() - started
        small = await searches(backend, data, console_agent("user7"), queries)
        large = await searches(backend, data, LARGE, queries)
        rss = rss_mb() - before
    finally:
        await backend.close()
    started = time.perf_counter()
    backend = open_store(engine, path)
    try:
        await ensure_collection(backend, "recall", DIMS, "synthetic", RECALL_KEYWORDS)
        await searches(backend, data, console_agent("user7"), 0)
        startup_s = time.perf_counter() - started
    finally:
        await backend.close()
    disk = disk_mb(path)
    shutil.rmtree(path, ignore_errors=True)
    return {
        "size": size,
        "insert_per_s": size / load_s,
        "small_p50": statistics.median(small),
        "small_p99": pct(small, 0.99),
        "large_p50": statistics.median(large),
        "large_p99": pct(large, 0.99),
        "startup_s": startup_s,
        "rss_mb": rss,
        "disk_mb": disk,
    }


async def run(args: argparse.Namespace) -> None:
    print(
        f"{'entries':>9}  {'insert/s':>9}  {'small agent p50/p99 ms':>22}  {'large agent p50/p99 ms':>22}  "
        f"{'start-up s':>10}  {'RSS MB':>7}  {'disk MB':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="membot-scale-", dir=args.dir) as tmp:
        for size in args.sizes:
            r = await measure(size, args.queries, Path(tmp), args.engine)
            large_n = size // LARGE_SHARE
            print(
                f"{size:>9,}  {r['insert_per_s']:>9,.0f}  {r['small_p50']:>10.2f} / {r['small_p99']:>8.2f}  "
                f"{r['large_p50']:>10.2f} / {r['large_p99']:>8.2f}  {r['startup_s']:>10.2f}  {r['rss_mb']:>7.0f}  "
                f"{r['disk_mb']:>8.0f}   (large agent: {large_n:,} entries, small: ~{(size - large_n) // 999:,})",
                flush=True,
            )
    print(f"(engine {args.engine}; cpu: {os.cpu_count()} cores, shared; synthetic vectors; {AGENTS:,} agents)")


def main() -> None:
    parser = argparse.ArgumentParser(description="The embedded store's insert rate, search latency and start-up")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--engine", choices=["edge", "local"], default="edge")
    parser.add_argument("--dir", default=None, help="where to build the stores (default: the system temp dir)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
