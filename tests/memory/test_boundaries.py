"""The stores satisfy the Protocols of ``bot.core.ports`` (what memory/ may import: tests/test_architecture.py)."""

from __future__ import annotations

import redis.asyncio as aioredis
from qdrant_client import AsyncQdrantClient

from bot.core.ports import AgentLocks, ArchivalMemory, CoreMemory, Embedder, RecallMemory, WorkingMemory
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.embeddings import HashingEmbedder, LocalEmbedder, OpenAIEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.redis.core import RedisCoreMemory
from memory.redis.keys import RedisKeys
from memory.redis.locks import RedisAgentLocks
from memory.redis.working import RedisWorkingMemory


def _typed_against_protocols(redis: aioredis.Redis, qdrant: AsyncQdrantClient) -> None:
    """Never called: mypy checks that each implementation fits its Protocol."""
    keys = RedisKeys()
    embedder: Embedder = HashingEmbedder()
    embedders: list[Embedder] = [LocalEmbedder(), OpenAIEmbedder(api_key="x")]
    core: CoreMemory = RedisCoreMemory(redis, keys)
    working: WorkingMemory = RedisWorkingMemory(redis, keys)
    locks: AgentLocks = RedisAgentLocks(redis, keys)
    recall: RecallMemory = QdrantRecallMemory(qdrant, "r", embedder)
    archival: ArchivalMemory = QdrantArchivalMemory(qdrant, "a", embedder)
    del embedders, core, working, locks, recall, archival


def test_protocol_conformance_is_checked_by_mypy() -> None:
    assert callable(_typed_against_protocols)
