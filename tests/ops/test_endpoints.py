"""`/healthz` and `/metrics` over real HTTP: the endpoints `membot run` serves beside the chat platforms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from adapters.console import console_agent, console_message
from bot.app import App, open_app
from bot.ops.metrics import Metrics
from bot.ops.serve import serve
from tests.ops.helpers import free_port, redis_server
from tests.scenario import RecordingSink, eventually, settings_for
from tests.standins.llm_server import ScriptedLLMServer


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[str]:
    """`membot run`'s serve loop in the background (no chat platform); yields the endpoints' base URL."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, lambda _: None, stop, adapters=[]))
    base = f"http://127.0.0.1:{app.settings.http_port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(up, what="/healthz to answer 200")
            yield base
    finally:
        stop.set()
        assert await task == 0


async def test_healthz_reports_each_component_and_metrics_count_a_turn(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, MEMBOT_HTTP_PORT=free_port())
    async with open_app(settings) as app, serving(app) as base, aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
            health = await response.json()
        assert health["status"] == "ok"
        assert {name: part["ok"] for name, part in health["components"].items()} == {
            "redis": True,
            "qdrant": True,
            "scheduler": True,
            "recall_indexer": True,
        }
        assert health["components"]["qdrant"]["detail"].startswith("embedded")
        assert health["components"]["recall_indexer"]["detail"] == "healthy"

        assert app.runtime is not None
        sink = RecordingSink()
        await app.runtime.handle(console_message("mia", "remember: Mia plays the cello"), sink)
        await app.runtime.handle(console_message("mia", "hello"), sink)
        assert sink.messages == ["Got it, I'll remember that.", "echo: hello"]
        assert await app.stores.outbox.wait_indexed(console_agent("mia"), within=10)

        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            found = samples(await response.text())
    assert found[("membot_turn_seconds_count", (("kind", "message"),))] == 2
    model_calls = found[("membot_model_request_seconds_count", (("outcome", "ok"), ("provider", "anthropic")))]
    assert model_calls == len(llm.requests) == 3  # insert + confirm, then echo
    assert found[("membot_model_tokens_total", (("kind", "input"), ("provider", "anthropic")))] > 0
    assert found[("membot_model_tokens_total", (("kind", "output"), ("provider", "anthropic")))] > 0
    op = (("operation", "archival_memory_insert"), ("outcome", "ok"))
    assert found[("membot_memory_operations_total", op)] == 1
    assert not any(
        name == "membot_memory_operations_total" and ("operation", "send_message") in labels for name, labels in found
    )
    assert found[("membot_errors_total", (("kind", "model"),))] == 0
    assert found[("membot_active_agents", ())] == 0 and found[("membot_turns_in_flight", ())] == 0
    assert found[("membot_recall_indexed_total", ())] == 4  # two messages and two replies, off the turns' path
    assert found[("membot_recall_set_aside_total", ())] == 0


async def test_healthz_is_503_naming_the_component_that_is_down(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    with redis_server(tmp_path / "redis") as redis:
        settings = settings_for(
            llm, "anthropic", key_prefix, data_dir, REDIS_URL=redis.url, MEMBOT_HTTP_PORT=free_port()
        )
        async with open_app(settings) as app, serving(app) as base, aiohttp.ClientSession() as session:
            redis.stop()
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 503
                health = await response.json()
    assert health["status"] == "unhealthy"
    components = health["components"]
    assert components["redis"]["ok"] is False and components["redis"]["detail"]
    assert components["qdrant"]["ok"] is True and components["scheduler"]["ok"] is True


def test_metrics_count_evictions_and_errors_by_kind() -> None:
    metrics = Metrics()
    metrics.evicted(7)
    metrics.evicted(3)
    metrics.error(TimeoutError("lock"))
    metrics.error(ConnectionRefusedError())
    metrics.error(ValueError("bug"))
    metrics.memory_operation("core_memory_replace", False)
    metrics.memory_operation("made_up_function", True)
    found = samples(metrics.render().decode())
    assert found[("membot_queue_evictions_total", ())] == 2
    assert found[("membot_queue_evicted_messages_total", ())] == 10
    assert {kind: found[("membot_errors_total", (("kind", kind),))] for kind in ("timeout", "storage", "internal")} == {
        "timeout": 1,
        "storage": 1,
        "internal": 1,
    }
    assert found[("membot_memory_operations_total", (("operation", "core_memory_replace"), ("outcome", "failed")))] == 1
    assert found[("membot_memory_operations_total", (("operation", "unknown"), ("outcome", "ok")))] == 1
    assert samples(Metrics().render().decode())[("membot_queue_evictions_total", ())] == 0, "registries are separate"
