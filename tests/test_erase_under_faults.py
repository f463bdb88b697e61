"""Erase is final through the real app, also during an embeddings outage: the user's newest messages wait in the
recall outbox (the stand-in's embeddings endpoint answers 503), the user erases, embeddings recover, the indexer
runs, and nothing of the user is in Qdrant or Redis but the record of the erase."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.app import App, open_app
from bot.core.events import AgentKey, Scope
from tests.scenario import RecordingSink, eventually, settings_for, slack_said
from tests.standins.llm_server import ScriptedLLMServer

ANN = AgentKey("slack", "T1", "U1")


@pytest.fixture
async def app(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path):  # type: ignore[no-untyped-def]
    settings = settings_for(llm, "openai", key_prefix, data_dir, MEMBOT_EMBEDDER="openai")
    async with open_app(settings) as running:
        assert running.runtime is not None
        yield running


async def test_an_erase_during_an_embeddings_outage_is_not_undone_when_they_recover(
    app: App, llm: ScriptedLLMServer, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    assert app.runtime is not None
    sink = RecordingSink()
    await app.runtime.handle(slack_said("my name is Ann", dm=True), sink)
    assert await app.stores.outbox.wait_indexed(ANN, within=20)
    llm.embeddings_down = True
    await app.runtime.handle(slack_said("my bank PIN is 4711", dm=True), sink)
    await app.runtime.handle(slack_said("the PIN opens the safe too", dm=False), sink)
    await eventually(lambda: app.stores.indexer.stats.failures >= 1, what="indexing to fail during the outage")
    assert await app.stores.outbox.pending(ANN) >= 2

    erased = await app.admin.erase(ANN, cause="user:slack:U1")
    assert erased["recall"] >= 4

    llm.embeddings_down = False
    await app.runtime.handle(slack_said("hello, I am Bo", dm=True), RecordingSink())  # indexing goes on (for Ann again)
    assert await app.stores.outbox.wait_indexed(ANN, within=30)
    await eventually(lambda: _idle(redis_client, app), what="the indexer to let go of every batch")

    texts = await _recall_texts(app)
    assert not any("4711" in text or "PIN" in text for text in texts), texts
    assert "hello, I am Bo" in texts, "what was said after the erase is kept"
    found = (await app.stores.recall.search(ANN, "bank PIN 4711", 0, Scope.PRIVATE)).hits
    assert not any("4711" in hit.text for hit in found)
    leftovers = []
    async for raw in redis_client.scan_iter(match=f"{key_prefix}:*"):
        key = raw.decode()
        kind = (await redis_client.type(key)).decode()
        content = str(await redis_client.xrange(key)) if kind == "stream" else ""
        content += str(await redis_client.hgetall(key)) if kind == "hash" else ""
        if "4711" in content:
            leftovers.append(key)
    assert leftovers == []


async def _idle(redis_client: aioredis.Redis, app: App) -> bool:
    pending = await redis_client.xpending(app.stores.outbox.stream_key, "indexers")
    return int(pending["pending"]) == 0


async def _recall_texts(app: App) -> list[str]:
    return [str(item["text"]) for item in await app.stores.recall.export(ANN)]


async def test_forget_during_an_embeddings_outage_takes_messages_not_yet_indexed(
    app: App, llm: ScriptedLLMServer
) -> None:
    assert app.runtime is not None
    sink = RecordingSink()
    await app.runtime.handle(slack_said("my name is Ann", dm=True), sink)
    assert await app.stores.outbox.wait_indexed(ANN, within=20)
    llm.embeddings_down = True
    await app.runtime.handle(slack_said("my bank PIN is 4711", dm=True), sink)
    started = time.monotonic()
    candidates = await app.admin.forget_candidates(ANN, "bank PIN")  # search by words; waits for the indexer once
    assert "my bank PIN is 4711" in [c.text for c in candidates if c.store == "recall"]
    await app.admin.forget(ANN, candidates, cause="user:slack:U1")
    assert time.monotonic() - started < 25
    assert not any("4711" in hit.text for hit in await app.stores.recall.waiting(ANN))

    llm.embeddings_down = False
    await app.runtime.handle(slack_said("hello again", dm=True), sink)
    assert await app.stores.outbox.wait_indexed(ANN, within=30)
    assert not any("4711" in text for text in await _recall_texts(app))
    assert "4711" not in str([m.to_json() for m in await app.stores.working.messages(ANN)])
