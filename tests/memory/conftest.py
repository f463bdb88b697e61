"""Fixtures for the memory stores: real Redis under the test's key prefix, embedded Qdrant in the test's data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.store import QdrantStore, open_qdrant
from memory.redis.core import RedisCoreMemory
from memory.redis.keys import RedisKeys
from memory.redis.working import RedisWorkingMemory


@pytest.fixture
def keys(key_prefix: str) -> RedisKeys:
    return RedisKeys(key_prefix)


@pytest.fixture
def core(redis_client: aioredis.Redis, keys: RedisKeys) -> RedisCoreMemory:
    return RedisCoreMemory(redis_client, keys, block_limit=200)


@pytest.fixture
def working(redis_client: aioredis.Redis, keys: RedisKeys) -> RedisWorkingMemory:
    return RedisWorkingMemory(redis_client, keys)


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
async def store(data_dir: Path, embedder: HashingEmbedder) -> AsyncIterator[QdrantStore]:
    store = await open_qdrant(
        path=data_dir / "qdrant", dimensions=embedder.dimensions, embedder_name=embedder.name, prefix="membot_test"
    )
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def recall(store: QdrantStore, embedder: HashingEmbedder) -> QdrantRecallMemory:
    return QdrantRecallMemory(store.recall, embedder)


@pytest.fixture
def archival(store: QdrantStore, embedder: HashingEmbedder) -> QdrantArchivalMemory:
    return QdrantArchivalMemory(store.archival, embedder)
