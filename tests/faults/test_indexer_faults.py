"""The recall indexer when the embeddings API is down: it backs off (also while draining at shutdown), recall reads
do not wait for it meanwhile, and `membot chat` starts and chats on, searching by words.

Real Redis (the test's prefix), embedded Qdrant in a temp dir, the OpenAI SDK against the stand-in's embeddings
endpoint answering 503 (``ScriptedLLMServer.embeddings_down``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from openai import AsyncOpenAI

from bot.core.events import Scope
from memory.qdrant.embeddings import OpenAIEmbedder
from memory.qdrant.indexer import RecallIndexer
from memory.qdrant.indexer_health import IndexerHealth
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.store import QdrantStore, open_qdrant
from memory.redis.keys import RedisKeys
from memory.redis.outbox import RecallOutbox
from tests.memory.helpers import ALICE, T0, recall_entry
from tests.scenario import env_for, eventually, settings_for
from tests.standins.llm_server import ScriptedLLMServer

MEMBOT = [sys.executable, "-m", "bot"]
DIMENSIONS = 64


@pytest.fixture
async def store(data_dir: Path) -> AsyncIterator[QdrantStore]:
    opened = await open_qdrant(path=data_dir / "qdrant", dimensions=DIMENSIONS, prefix="membot_test")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def remote(llm: ScriptedLLMServer) -> AsyncIterator[OpenAIEmbedder]:
    """The OpenAI embedder on the stand-in; no SDK retries, so each indexer try is one request."""
    client = AsyncOpenAI(api_key="test-key", base_url=llm.openai_base_url, max_retries=0)
    embedder = OpenAIEmbedder("text-embedding-3-small", dimensions=DIMENSIONS, client=client)
    yield embedder
    await embedder.aclose()


@pytest.fixture
def outbox(redis_client: aioredis.Redis, key_prefix: str) -> RecallOutbox:
    return RecallOutbox(redis_client, RedisKeys(key_prefix))


def warnings_of(caplog: pytest.LogCaptureFixture, text: str) -> int:
    mine = [r for r in caplog.records if r.name == "memory.qdrant.indexer" and r.levelno == logging.WARNING]
    return sum(1 for record in mine if text in record.getMessage())


async def test_draining_while_the_embeddings_api_is_down_backs_off_and_ends_in_time(
    llm: ScriptedLLMServer,
    store: QdrantStore,
    remote: OpenAIEmbedder,
    outbox: RecallOutbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="memory.qdrant.indexer")
    recall = QdrantRecallMemory(store.recall, remote, outbox=outbox)
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, retry_seconds=0.05, batch_size=16)
    llm.embeddings_down = True
    await recall.add([recall_entry(ALICE, f"message number {i}", i) for i in range(200)])
    await indexer.start()
    await eventually(lambda: indexer.health.backing_off, within=10, what="the indexer to back off")

    started = time.monotonic()
    await indexer.close(within=2.0)  # drains with backoff; the next step would come after the deadline: it stops
    took = time.monotonic() - started

    assert took < 3.0, took
    failed = warnings_of(caplog, "recall indexing failed")
    assert 1 <= failed <= 10, failed  # one per backoff step (0.05 s, 0.1 s, ... doubling), not one per batch
    assert warnings_of(caplog, "stopping now") == 1
    assert await outbox.pending(ALICE) == 200  # all kept in Redis for the next start
    assert await outbox.dead_letters() == 0


async def test_close_does_not_wait_out_a_long_backoff_step(
    llm: ScriptedLLMServer, store: QdrantStore, remote: OpenAIEmbedder, outbox: RecallOutbox
) -> None:
    recall = QdrantRecallMemory(store.recall, remote, outbox=outbox)
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, retry_seconds=20.0)
    llm.embeddings_down = True
    await recall.add([recall_entry(ALICE, "kept for later", 0)])
    await indexer.start()
    await eventually(lambda: indexer.health.backing_off, within=10, what="the indexer to back off")
    assert indexer.health.describe().startswith("backing off since ")
    started = time.monotonic()
    await indexer.close(within=10.0)  # sleeping 20 s before the next try: close wakes it and it stops at once
    assert time.monotonic() - started < 2.0
    assert await outbox.pending(ALICE) == 1


async def test_reads_do_not_wait_for_an_indexer_that_backs_off(
    llm: ScriptedLLMServer, store: QdrantStore, remote: OpenAIEmbedder, outbox: RecallOutbox
) -> None:
    health = IndexerHealth(0.05, 1.0)
    recall = QdrantRecallMemory(  # the app's default wait for catch-up: 10 s
        store.recall, remote, outbox=outbox, indexer_health=health
    )
    await recall.index([recall_entry(ALICE, "my bicycle is green", 0)])  # indexed while the API answered
    llm.embeddings_down = True
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, health=health)
    await indexer.start()
    try:
        await recall.add([recall_entry(ALICE, "the blue door has a brass key", 1)])
        await eventually(lambda: health.backing_off, within=10, what="the indexer to back off")

        started = time.monotonic()
        page = await recall.search(ALICE, "bicycle", 0, Scope.PRIVATE)  # words alone: the query cannot be embedded
        dated = await recall.search_date(ALICE, T0 - timedelta(days=1), T0 + timedelta(days=1), 0, Scope.PRIVATE)
        exported = await recall.export(ALICE)
        counted = await recall.count(ALICE)
        took = time.monotonic() - started

        assert took < 2.0, took  # each read would wait 10 s for the catch-up before
        assert [hit.text for hit in page.hits] == ["my bicycle is green"]
        assert [hit.text for hit in dated.hits] == ["my bicycle is green"]  # what is indexed
        assert [item["text"] for item in exported] == ["my bicycle is green"]
        assert counted == 2  # the waiting message is counted
        assert await outbox.pending(ALICE) == 1

        llm.embeddings_down = False  # back: the next backoff step indexes it, and reads wait again
        await eventually(lambda: not health.backing_off, within=10, what="the indexer to recover")
        page = await recall.search(ALICE, "brass key", 0, Scope.PRIVATE)
        assert page.hits[0].text == "the blue door has a brass key"
    finally:
        await indexer.close()


def chat_env(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    openai = {"MEMBOT_EMBEDDER": "openai", "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.openai_base_url}
    return {**base, **env_for(settings), "HF_HUB_OFFLINE": "1", **openai, **extra}


def membot(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    command = [*MEMBOT, *args]
    done = subprocess.run(command, input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.mark.parametrize(
    "extra",
    [{}, {"MEMBOT_OPENAI_EMBEDDING_MODEL": "my-embedder", "MEMBOT_EMBEDDING_DIMENSIONS": "64"}],
    ids=["size-from-model-name", "size-from-setting"],
)
def test_chat_starts_and_chats_on_while_the_embeddings_api_answers_503(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path, extra: dict[str, str]
) -> None:
    llm.embeddings_down = True
    env = chat_env(llm, key_prefix, data_dir, **extra)
    said = b"my name is Ines\nremember: I like green tea\nsearch: Ines\nwhat is my name?\n"
    result = membot(["chat", "--user", "ines"], env, tmp_path, said)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "membot> Got it, I'll remember that."
    assert lines[1].startswith("membot> That failed: ") and "embedding service is unavailable" in lines[1]
    assert lines[2].startswith("membot> Found: ")  # by words, from what is indexed (nothing yet): an answer
    assert lines[-1] == "membot> Your name is Ines."
    assert "embeddings are unavailable" in result.stderr and "Traceback" not in result.stderr

    llm.embeddings_down = False  # the messages waited in Redis: the next process indexes them
    exported = membot(["memory", "export", "console:ines"], env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    texts = [item["text"] for item in json.loads(exported.stdout)["recall"]]
    assert {"my name is Ines", "search: Ines", "what is my name?", "Your name is Ines."} <= set(texts)
    assert len(texts) == 8


def test_an_embedding_model_of_unknown_size_is_asked_of_the_server_or_named_in_one_line(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    env = chat_env(llm, key_prefix, data_dir, MEMBOT_OPENAI_EMBEDDING_MODEL="my-embedder")
    llm.embeddings_down = True  # the server cannot tell the size of the model's vectors
    result = membot(["chat", "--user", "ines"], env, tmp_path, b"hello\n")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "'my-embedder'" in line and "MEMBOT_EMBEDDING_DIMENSIONS" in line and "Traceback" not in line
    llm.embeddings_down = False  # it answers: the size is asked of it, and membot chats
    result = membot(["chat", "--user", "ines"], env, tmp_path, b"hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "membot> echo: hello"


async def test_the_health_report_names_an_indexer_that_backs_off() -> None:
    health = IndexerHealth(0.5, 4.0)
    assert health.describe() == "healthy" and not health.backing_off
    delays = [health.failed(RuntimeError("down")) for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert health.describe().startswith("backing off since ") and "(RuntimeError)" in health.describe()
    await asyncio.sleep(0)
    assert health.recovered() is not None and health.describe() == "healthy" and health.step == 0


async def test_an_entry_that_fails_alone_is_set_aside_and_blocks_no_one(
    store: QdrantStore, remote: OpenAIEmbedder, outbox: RecallOutbox
) -> None:
    """A message over the embedding model's input limit (the API answers 400) fails alone, while others index."""
    recall = QdrantRecallMemory(store.recall, remote, outbox=outbox)
    indexer = RecallIndexer(outbox, recall.index, exclusive=True, max_attempts=2, retry_seconds=0.01, lease_seconds=0.2)
    huge = "word " * 8000  # ~10,000 tokens
    await recall.add([recall_entry(ALICE, "before the long one", 0), recall_entry(ALICE, huge, 1)])
    await indexer.start()
    try:
        for minute in range(2, 40):  # the conversation goes on; each new message joins the batch that fails
            await recall.add([recall_entry(ALICE, f"later message {minute}", minute)])
            if await outbox.dead_letters():
                break
            await asyncio.sleep(0.2)

        async def all_indexed() -> bool:
            return await outbox.pending(ALICE) == 0

        await eventually(all_indexed, within=10, what="everything else to be indexed")
    finally:
        await indexer.close()
    assert await outbox.dead_letters() == 1  # kept for an admin (membot doctor names it), not dropped
    assert await outbox.pending(ALICE) == 0
    indexed = {item["text"] for item in await recall.export(ALICE)}
    assert "before the long one" in indexed and huge not in indexed and len(indexed) == minute
    assert not indexer.health.backing_off
