"""Embedded Qdrant at scale: hybrid search latency with 10k, 100k and 1M recall points in one collection.

Builds membot's recall collection (``ensure_collection``: the same dense + sparse/IDF config) and fills it with
synthetic points shaped like recall messages: random unit 384-dim dense vectors, BM25-style sparse vectors of
about 12 terms drawn from a Zipf vocabulary of 50k terms, and a recall payload (10 agents, 3 channels each, one
message a minute). Then times membot's own ``hybrid_query`` (dense + sparse prefetch, RRF, filtered by agent),
the same call ``conversation_search`` makes, minus the query embedding (MiniLM: about 10-30 ms).

    .venv/bin/python -m bench.qdrant_scale [--sizes 10000 100000 300000] [--queries 20] [--extrapolate 1000000]
        [--engine edge|local]

``--engine edge`` (the default) measures Qdrant Edge, membot's embedded store; ``--engine local`` measures
qdrant-client's local mode, the embedded store before it (what the rest of this paragraph describes).

Embedded Qdrant persists every point to SQLite, so loading is slow (about 3 minutes per 100k points here); sizes
above ``--in-memory-above`` are loaded into ``:memory:`` local mode instead, which runs the same search code
(embedded Qdrant keeps every point in RAM either way), and their disk use is extrapolated from the largest
on-disk size. Search time in embedded mode grows linearly with the collection (every query checks the filter
against every point in Python), so ``--extrapolate`` sizes are estimated linearly from the largest measured size
and printed as estimates: loading 1M points would take over half an hour, searching it ~30 s a query.
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
from bot.core.events import Scope
from memory.qdrant.backend import VectorBackend, VectorPoint
from memory.qdrant.client_backend import ClientBackend
from memory.qdrant.search import agent_filter, hybrid_query, to_rfc3339
from memory.qdrant.sparse import SparseTerms
from memory.qdrant.store import RECALL_KEYWORDS, ensure_collection, open_backend

DIMS = 384
VOCABULARY = 50_000
AGENTS = 10
BATCH = 2_000
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def rss_mb() -> float:
    """Resident memory of this process (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


class Synthetic:
    """Reproducible recall-shaped points."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(1, VOCABULARY + 1)
        self.term_p = (1 / ranks) / (1 / ranks).sum()

    def dense(self, n: int) -> np.ndarray:
        vectors = self.rng.standard_normal((n, DIMS)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def sparse(self, terms: int = 12) -> SparseTerms:
        ids = sorted({int(i) for i in self.rng.choice(VOCABULARY, size=terms, p=self.term_p)})
        return SparseTerms(ids, [float(v) for v in self.rng.uniform(0.5, 1.6, len(ids))])

    def points(self, start: int, n: int) -> list[VectorPoint]:
        dense = self.dense(n)
        points = []
        for offset in range(n):
            i = start + offset
            agent = console_agent(f"user{i % AGENTS}")
            sparse = self.sparse()
            payload = {
                "agent": str(agent),
                "platform": "console",
                "channel": f"c{(i // AGENTS) % 3}",
                "role": "user" if i % 2 else "assistant",
                "author": f"user{i % AGENTS}",
                "timestamp": to_rfc3339(T0 + timedelta(minutes=i // AGENTS)),
                "scope": Scope.PRIVATE.value,
                "message_id": None,
                "text": f"synthetic message {i} " + "lorem ipsum " * 8,
            }
            points.append(VectorPoint(str(uuid.UUID(int=i)), dense[offset].tolist(), sparse, payload))
        return points


async def measure(size: int, queries: int, in_memory: bool, root: Path, engine: str = "edge") -> dict[str, float]:
    """Load ``size`` points into a fresh collection, then time ``queries`` hybrid searches."""
    path = root / f"q{size}"
    backend: VectorBackend
    if engine == "edge":
        backend, in_memory = open_backend(path=path), False
    else:  # qdrant-client's local mode: membot's embedded store before Qdrant Edge
        client = AsyncQdrantClient(location=":memory:") if in_memory else AsyncQdrantClient(path=str(path))
        backend = ClientBackend(client, str(path))
    data = Synthetic()
    before = rss_mb()
    try:
        await ensure_collection(backend, "recall", DIMS, "synthetic", RECALL_KEYWORDS)
        recall = await backend.collection("recall")
        started = time.perf_counter()
        for start in range(0, size, BATCH):
            await recall.upsert(data.points(start, min(BATCH, size - start)))
        load_s = time.perf_counter() - started
        latencies = []
        for q in range(queries + 2):  # the first two warm up
            dense = data.dense(1)[0].tolist()
            sparse = data.sparse(4)
            began = time.perf_counter()
            only = agent_filter(console_agent(f"user{q % AGENTS}"), Scope.PRIVATE)
            await hybrid_query(recall, dense=dense, sparse=sparse, query_filter=only)
            if q >= 2:
                latencies.append((time.perf_counter() - began) * 1000)
        latencies.sort()
        return {
            "size": size,
            "load_s": load_s,
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
            "rss_mb": rss_mb() - before,
            "disk_mb": float("nan") if in_memory else disk_mb(path),
            "in_memory": float(in_memory),
        }
    finally:
        await backend.close()
        shutil.rmtree(path, ignore_errors=True)


async def run(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="membot-scale-") as tmp:
        for size in args.sizes:
            row = await measure(size, args.queries, size > args.in_memory_above, Path(tmp), args.engine)
            rows.append(row)
            print(
                f"{size:>9,} points: hybrid search p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  "
                f"load {row['load_s']:6.0f} s  RAM +{row['rss_mb']:6.0f} MB  "
                + (f"disk {row['disk_mb']:6.0f} MB" if not row["in_memory"] else "(in memory: disk not measured)"),
                flush=True,
            )
    on_disk = [r for r in rows if not r["in_memory"]]
    disk_per_point = on_disk[-1]["disk_mb"] / on_disk[-1]["size"] if on_disk else float("nan")
    for r in rows:
        if r["in_memory"]:
            print(f"{int(r['size']):>9,} points: disk about {disk_per_point * r['size']:.0f} MB (extrapolated, linear)")
    largest = rows[-1]
    for size in args.extrapolate:
        f = size / largest["size"]
        print(
            f"{size:>9,} points: ESTIMATED (linear from {int(largest['size']):,}): "
            f"p50 about {largest['p50_ms'] * f / 1000:.0f} s, RAM about {largest['rss_mb'] * f / 1024:.1f} GB, "
            f"disk about {disk_per_point * size / 1024:.1f} GB",
        )
    print(f"(cpu: {os.cpu_count()} cores, shared; synthetic vectors; {AGENTS} agents, each query filtered to one)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Embedded Qdrant hybrid-search latency at scale")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--in-memory-above", type=int, default=100_000, help="local mode only")
    parser.add_argument("--engine", choices=["edge", "local"], default="edge", help="local: qdrant-client's local mode")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
