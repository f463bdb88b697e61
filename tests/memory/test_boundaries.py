"""The stores satisfy the Protocols of ``bot.core.ports``, and ``memory/`` imports only types and Protocols."""

from __future__ import annotations

import ast
from pathlib import Path

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

MEMORY = Path(__file__).resolve().parents[2] / "memory"
ALLOWED_FROM_BOT = {"bot.core.events", "bot.core.memory_types", "bot.core.ports", "bot.llm.types"}


def test_memory_imports_only_types_and_protocols_from_bot() -> None:
    for module in sorted(MEMORY.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name == "bot" or name.startswith("bot."):
                    assert name in ALLOWED_FROM_BOT, f"{module.name} imports {name}"


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
