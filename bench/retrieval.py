"""Retrieval quality on LoCoMo: evidence recall@5/10/20 of membot's recall memory, per search method.

Replays every conversation of ``../shared/datasets/locomo/locomo_dev.json`` into recall memory through membot's
own ``QdrantRecallMemory.add`` (one call per turn, as the runtime stores messages: author = speaker, timestamp =
the session's date plus the turn's position in seconds so turns keep their order, attachment text = the image's
``blip_caption``), into one embedded Qdrant collection in a temp dir (one agent per conversation), with the local
MiniLM embedder. Then runs every question of categories 1-4 through ``QdrantRecallMemory.search`` (pages 0-3 =
the top 20) and counts the share of its evidence turns found in the top k, averaged over questions.

    .venv/bin/python -m bench.retrieval [--limit-conversations N] [--methods dense sparse hybrid]

"hybrid" is the shipped search; "dense" and "sparse" run one half alone. Search latency is page 0 of a search, the
store's part: the query is embedded just before (timed apart, "query embedding"; a real search adds both), and
later pages reuse the query's embedding. Evidence ids are read as written, except that
"D8:6; D9:17" lists two and "D:11:26" means D11:26; ids not in the conversation are dropped, and questions left
with no evidence are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.console import console_agent
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import PAGE_SIZE, RecallEntry
from bot.core.ports import Embedder
from memory.qdrant.embeddings import LocalEmbedder
from memory.qdrant.recall import QdrantRecallMemory, recall_point_id
from memory.qdrant.search import SEARCH_MODES, SearchMode
from memory.qdrant.store import open_qdrant

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "locomo" / "locomo_dev.json"
KS = (5, 10, 20)
_SESSION = re.compile(r"session_(\d+)")


@dataclass
class Conversation:
    agent: AgentKey
    entries: list[RecallEntry]
    questions: list[tuple[str, set[str], int]]  # question, evidence ids, category
    dia_of: dict[str, str] = field(default_factory=dict)  # point id -> dia_id


def load(path: Path, limit: int | None) -> list[Conversation]:
    """The conversations as recall entries, and their category 1-4 questions with normalized evidence."""
    conversations = []
    for raw in json.loads(path.read_text())[:limit]:
        agent = console_agent(raw["sample_id"])
        sessions = sorted((int(m[1]), k) for k in raw if (m := _SESSION.fullmatch(k)))
        entries: list[RecallEntry] = []
        dia_of: dict[str, str] = {}
        for number, key in sessions:
            start = datetime.strptime(raw[f"session_{number}_date_time"], "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
            for position, turn in enumerate(raw[key]):
                entry = RecallEntry(
                    agent=agent,
                    role="user",
                    text=turn["text"],
                    timestamp=start + timedelta(seconds=position),
                    author=turn["speaker"],
                    platform="console",
                    channel="locomo",
                    scope=Scope.PRIVATE,
                    message_id=turn["dia_id"],
                    attachment_text=turn.get("blip_caption"),
                )
                entries.append(entry)
                dia_of[recall_point_id(entry)] = turn["dia_id"]
        known = set(dia_of.values())
        questions = []
        for qa in raw["qa"]:
            if qa["category"] not in (1, 2, 3, 4):
                continue
            parts = (p.replace("D:", "D") for e in qa["evidence"] for p in re.split(r"[;,\s]+", e))
            evidence = {p for p in parts if p in known}
            if evidence:
                questions.append((qa["question"], evidence, qa["category"]))
        conversations.append(Conversation(agent, entries, questions, dia_of))
    return conversations


class QueryCache:
    """An embedder that remembers query embeddings, so pages 1-3 of a search do not embed the query again."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self._memo: dict[str, list[float]] = {}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self._memo]
        for text, vector in zip(missing, await self._inner.embed(missing), strict=True):
            self._memo[text] = vector
        return [self._memo[t] for t in texts]

    def forget(self) -> None:
        self._memo.clear()

    async def aclose(self) -> None:
        self.forget()


@dataclass
class Result:
    method: str
    recall: dict[int, list[float]]
    by_category: dict[int, list[float]]
    latency_ms: list[float]  # page 0 of a search, the store's part (the query embedded just before)
    embed_ms: list[float] = field(default_factory=list)  # embedding the query


async def evaluate(
    memory: QdrantRecallMemory, queries: QueryCache, method: str, conversations: list[Conversation]
) -> Result:
    result = Result(method, {k: [] for k in KS}, {c: [] for c in (1, 2, 3, 4)}, [])
    for conv in conversations:
        for question, evidence, category in conv.questions:
            queries.forget()  # page 0 embeds the query, as a real search does: timed apart from the search
            if method != "sparse":
                started = time.perf_counter()
                await queries.embed([question])
                result.embed_ms.append((time.perf_counter() - started) * 1000)
            ranked: list[str] = []
            for page in range(max(KS) // PAGE_SIZE):
                started = time.perf_counter()
                hits = (await memory.search(conv.agent, question, page, Scope.PRIVATE)).hits
                if page == 0:
                    result.latency_ms.append((time.perf_counter() - started) * 1000)
                ranked.extend(conv.dia_of.get(h.id, "?") for h in hits)
            for k in KS:
                result.recall[k].append(len(evidence & set(ranked[:k])) / len(evidence))
            if len(result.latency_ms) % 100 == 0:
                print(f"  {method}: {len(result.latency_ms)} questions searched", file=sys.stderr, flush=True)
            result.by_category[category].append(result.recall[5][-1])
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(results: list[Result], conversations: list[Conversation], ingest_s: float) -> str:
    turns = sum(len(c.entries) for c in conversations)
    questions = sum(len(c.questions) for c in conversations)
    lines = [
        f"LoCoMo dev: {len(conversations)} conversations, {turns} turns, {questions} questions (categories 1-4)",
        f"{'method':8} {'R@5':>6} {'R@10':>6} {'R@20':>6}   R@5 by category 1/2/3/4   search p50/p99 ms"
        "   query embedding p50/p99 ms",
    ]
    for r in results:
        recall = " ".join(f"{statistics.fmean(r.recall[k]):6.3f}" for k in KS)
        cats = "/".join(f"{statistics.fmean(v):.2f}" if v else "-" for v in r.by_category.values())
        latency = f"{percentile(r.latency_ms, 0.5):6.1f} / {percentile(r.latency_ms, 0.99):6.1f}"
        embed = f"{percentile(r.embed_ms, 0.5):6.1f} / {percentile(r.embed_ms, 0.99):6.1f}" if r.embed_ms else "-"
        lines.append(f"{r.method:8} {recall}   {cats:24}  {latency}   {embed}")
    lines.append(
        f"ingest: {turns} messages in {ingest_s:.1f} s = {turns / ingest_s:.0f} messages/s "
        "(one add() per message: embedding, context lookup, upsert)"
    )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    conversations = load(Path(args.data), args.limit_conversations)
    embedder = LocalEmbedder()
    await embedder.warm()
    with tempfile.TemporaryDirectory(prefix="membot-retrieval-") as tmp:
        store = await open_qdrant(
            path=Path(tmp) / "qdrant", dimensions=embedder.dimensions, embedder_name=embedder.name, prefix="bench"
        )
        try:
            writer = QdrantRecallMemory(store.recall, embedder)
            started = time.perf_counter()
            for conv in conversations:
                for entry in conv.entries:
                    await writer.add([entry])
            ingest_s = time.perf_counter() - started
            print(f"  ingested {sum(len(c.entries) for c in conversations)} messages", file=sys.stderr, flush=True)
            queries = QueryCache(embedder)
            results = []
            for method in args.methods:
                mode: SearchMode = method
                memory = QdrantRecallMemory(store.recall, queries, mode=mode)
                results.append(await evaluate(memory, queries, method, conversations))
        finally:
            await store.close()
    return report(results, conversations, ingest_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit-conversations", type=int, default=None, metavar="N")
    parser.add_argument("--methods", nargs="+", choices=SEARCH_MODES, default=["dense", "sparse", "hybrid"])
    parser.add_argument("--data", default=str(DATA), help="LoCoMo JSON (default: %(default)s)")
    args: Any = parser.parse_args(argv)
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
