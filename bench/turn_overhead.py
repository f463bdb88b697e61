"""Turn overhead: the time a turn spends in membot itself, with a zero-latency model.

Runs real turns through the composition root (real Redis, embedded Qdrant, the configured embedder) with an
in-process model stand-in that answers instantly, so all measured time is membot's own: locking, queue and recall
writes (with embedding), context building and token counting, function execution. Prints p50/p99 per turn and
turns per second with 1 and 32 concurrent agents.

    .venv/bin/python -m bench.turn_overhead [--turns 200] [--embedder local|hashing] [--concurrency 1 32]

Needs a Redis (REDIS_URL, default 127.0.0.1:6379); uses a throw-away key prefix and data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import redis as syncredis

from bot.app import open_app
from bot.events import InboundMessage, OutboundReply
from bot.llm.tokens import TokenCounter
from bot.llm.types import ChatMessage, Completion, SystemPrompt, ToolCall, ToolSpec, Usage
from bot.settings import Settings


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(turns: int, embedder: str, levels: list[int]) -> None:
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
                warm = InboundMessage("console", None, "bench", "warmup", "warmup", "hello")
                await runtime.handle(warm, NullSink())
                print(f"embedder={embedder} turns per level={turns} (Redis prefix {prefix})")
                for agents in levels:
                    durations: list[float] = []

                    async def user(
                        index: int, count: int, agents: int = agents, durations: list[float] = durations
                    ) -> None:
                        name = f"u{agents}-{index}"
                        for turn in range(count):
                            text = f"message {turn}: today I walked the dog and cooked pasta for my sister"
                            started = time.perf_counter()
                            await runtime.handle(InboundMessage("console", None, "bench", name, name, text), NullSink())
                            durations.append(time.perf_counter() - started)

                    per_agent = max(1, turns // agents)
                    started = time.perf_counter()
                    await asyncio.gather(*(user(i, per_agent) for i in range(agents)))
                    wall = time.perf_counter() - started
                    ms = [d * 1000 for d in durations]
                    print(
                        f"  {agents:>2} concurrent agents: {len(ms)} turns, p50 {statistics.median(ms):.1f} ms, "
                        f"p99 {percentile(ms, 0.99):.1f} ms per turn, {len(ms) / wall:.1f} turns/s"
                    )
        finally:
            client = syncredis.Redis.from_url(settings.redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200, help="turns per concurrency level")
    parser.add_argument("--embedder", default="local", choices=["local", "hashing"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.embedder, args.concurrency))


if __name__ == "__main__":
    main()
