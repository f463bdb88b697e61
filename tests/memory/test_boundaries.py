"""The stores satisfy the Protocols of ``bot.ports``, and ``memory/`` only imports types and Protocols from ``bot/``."""

from __future__ import annotations

import ast
from pathlib import Path

import redis.asyncio as aioredis
from qdrant_client import AsyncQdrantClient

from bot.ports import AgentLocks, ArchivalMemory, CoreMemory, Embedder, RecallMemory, WorkingMemory
from memory.archival import QdrantArchivalMemory
from memory.core import RedisCoreMemory
from memory.embeddings import HashingEmbedder, LocalEmbedder, OpenAIEmbedder
from memory.keys import RedisKeys
from memory.locks import RedisAgentLocks
from memory.recall import QdrantRecallMemory
from memory.working import RedisWorkingMemory

MEMORY = Path(__file__).resolve().parents[2] / "memory"
ALLOWED_FROM_BOT = {"bot.events", "bot.memory_types", "bot.ports", "bot.llm.types"}


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
