"""Turn overhead: the time a turn spends in membot itself, with a zero-latency model.

Runs real turns through the composition root (real Redis, embedded Qdrant, the configured embedder, the
background recall indexer) with an in-process model stand-in that answers instantly, so all measured time is
membot's own: locking, queue and outbox writes, context building and token counting, function execution.

For each number of concurrent agents it runs two loads:

- *paced*: every agent's user sends a message, reads the reply, and writes the next one after a pause drawn
  from an exponential distribution (mean ``--think`` seconds; 1 s, so 32 agents offer ~32 turns a second, far
  more than real chat). The p50/p99 printed are the time from a message to its last reply: membot's own time
  per turn, including waiting for other agents' turns and the indexer on the same event loop.
- *saturated*: users write again the moment they are answered. This measures throughput (turns per second);
  its latency is only the queueing that closed loop creates (agents / throughput), printed for completeness.

After each load it prints how long the indexer took to finish the recall entries still waiting (its lag).

    .venv/bin/python -m bench.turn_overhead [--embedder local|hashing] [--concurrency 1 32] [--think 1.0]
        [--paced-turns 20] [--turns 640] [--prefill 100000]

``--prefill N`` first stores N synthetic recall entries of 1,000 other agents (the store at that size).

Needs a Redis (REDIS_URL, default 127.0.0.1:6379); uses a throw-away key prefix and data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.console import console_agent
from bot.app import App, open_app
from bot.core.events import InboundMessage, OutboundReply
from bot.llm.tokens import TokenCounter
from bot.llm.types import ChatMessage, Completion, ReplyPreview, SystemPrompt, ToolCall, ToolSpec, Usage
from bot.runtime.runtime import Runtime
from bot.settings import Settings
from memory.redis.outbox import RecallOutbox
from memory.redis.url import sync_client


class InstantModel:
    """A model stand-in with zero latency: always one send_message, counted with the real token counter."""

    provider = "bench"
    model = "instant"

    def __init__(self) -> None:
        self._counter = TokenCounter()
        self.calls = 0

    async def complete(
        self,
        system: SystemPrompt,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        *,
        max_output_tokens: int,
        preview: ReplyPreview | None = None,
    ) -> Completion:
        self.calls += 1
        call = ToolCall(f"call_{self.calls}", "send_message", '{"message": "Sounds good, tell me more."}')
        return Completion(text="", tool_calls=(call,), usage=Usage(), stop_reason="tool_use")

    def count_tokens(self, system: SystemPrompt, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> int:
        return self._counter.count(system, messages, tools)

    async def aclose(self) -> None:
        return None


class NullSink:
    async def send(self, reply: OutboundReply) -> None:
        return None

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        yield


async def measure(runtime: Runtime, tag: str, agents: int, turns: int, think: float) -> tuple[list[float], float]:
    """Run ``turns`` turns spread over ``agents`` users; the per-turn times (ms) and turns per second."""
    durations: list[float] = []
    pauses = random.Random(7)

    async def user(name: str, count: int) -> None:
        if think:
            await asyncio.sleep(pauses.uniform(0, think))  # users do not all start at once
        for turn in range(count):
            text = f"message {turn}: today I walked the dog and cooked pasta for my sister"
            started = time.perf_counter()
            await runtime.handle(
                InboundMessage(console_agent(name), "console", None, "bench", name, name, text), NullSink()
            )
            durations.append((time.perf_counter() - started) * 1000)
            if think:
                await asyncio.sleep(pauses.expovariate(1 / think))

    per_agent = max(1, turns // agents)
    started = time.perf_counter()
    await asyncio.gather(*(user(f"{tag}-{i}", per_agent) for i in range(agents)))
    return durations, len(durations) / (time.perf_counter() - started)


async def drain(outbox: RecallOutbox) -> float:
    """Seconds until the indexer has taken every waiting recall entry."""
    started = time.perf_counter()
    while await outbox.waiting():  # noqa: ASYNC110 (polls Redis: there is no event to wait on)
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def prefill(app: App, entries: int) -> None:
    """Fill the recall collection with ``entries`` synthetic entries of 1,000 other agents (``bench.qdrant_scale``),
    so turns run against a store of that size."""
    from bench.qdrant_scale import BATCH, Synthetic

    data = Synthetic()
    started = time.perf_counter()
    for start in range(0, entries, BATCH):
        await app.stores.qdrant.recall.upsert(data.points(start, min(BATCH, entries - start)))
    print(f"prefilled {entries:,} recall entries of 1,000 other agents in {time.perf_counter() - started:.0f} s")


async def run(turns: int, embedder: str, levels: list[int], think: float, paced_turns: int, entries: int) -> None:
    prefix = f"membot-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            MEMBOT_REDIS_PREFIX=prefix,
            MEMBOT_DATA_DIR=Path(data_dir),
            MEMBOT_EMBEDDER=embedder,
        )
        try:
            async with open_app(settings, model=InstantModel()) as app:
                runtime = app.runtime
                assert runtime is not None
                if entries:
                    await prefill(app, entries)
                warm = InboundMessage(console_agent("warmup"), "console", None, "bench", "warmup", "warmup", "hello")
                await runtime.handle(warm, NullSink())
                await drain(app.stores.outbox)  # the warm-up's indexing loads the embedding model before measuring
                print(
                    f"embedder={embedder}; paced: {paced_turns} turns per agent, think {think} s; "
                    f"saturated: {turns} turns (Redis prefix {prefix})"
                )
                for agents in levels:
                    for load, pause, count in (("paced", think, agents * paced_turns), ("saturated", 0.0, turns)):
                        ms, rate = await measure(runtime, f"{load}{agents}", agents, count, pause)
                        lag = await drain(app.stores.outbox)
                        print(
                            f"  {agents:>2} agents {load:<9}: {len(ms)} turns, p50 {statistics.median(ms):6.1f} ms, "
                            f"p99 {percentile(ms, 0.99):6.1f} ms, {rate:6.1f} turns/s; indexer lag {lag:.2f} s"
                        )
        finally:
            client = sync_client(settings.redis_url)  # on a cluster, SCAN visits every master and DEL splits by slot
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=640, help="turns of the saturated load, per level")
    parser.add_argument("--paced-turns", type=int, default=20, help="turns per agent of the paced load")
    parser.add_argument("--embedder", default="local", choices=["local", "hashing"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between a reply and the next message")
    parser.add_argument("--prefill", type=int, default=0, help="recall entries of other agents stored first")
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.embedder, args.concurrency, args.think, args.paced_turns, args.prefill))


if __name__ == "__main__":
    main()
