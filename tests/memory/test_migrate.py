"""A store of qdrant-client's former local mode is migrated to Qdrant Edge on first open: ids, payloads and
vectors kept (nothing re-embedded), the old files set aside."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from qdrant_client import AsyncQdrantClient

from bot.core.events import Scope
from bot.core.memory_types import ArchivalEntry
from memory.qdrant.archival import QdrantArchivalMemory
from memory.qdrant.client_backend import ClientBackend
from memory.qdrant.edge_backend import EdgeBackend
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.migrate import SET_ASIDE
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.search import scroll_all
from memory.qdrant.store import CollectionNames, open_qdrant, open_store
from tests.memory.helpers import ALICE, T0, recall_entry
from tests.scenario import env_for, settings_for
from tests.standins.llm_server import ScriptedLLMServer


async def test_a_local_mode_store_is_migrated_once(data_dir: Path, embedder: HashingEmbedder) -> None:
    path = data_dir / "qdrant"
    names = CollectionNames.with_prefix("membot_test")
    old = await open_store(ClientBackend(AsyncQdrantClient(path=str(path)), str(path)), names, 384, embedder.name)
    try:
        await QdrantRecallMemory(old.recall, embedder).add([recall_entry(ALICE, f"message {i}", i) for i in range(30)])
        await QdrantArchivalMemory(old.archival, embedder).insert(ArchivalEntry(ALICE, "Alice likes tea", T0))
        before = {c.name: await scroll_all(c, (), dense=True) for c in (old.recall, old.archival)}
    finally:
        await old.close()
    store = await open_qdrant(path=path, dimensions=384, embedder_name=embedder.name, prefix="membot_test")
    try:
        assert isinstance(store.backend, EdgeBackend)
        for collection in (store.recall, store.archival):
            after = {p.id: p for p in await scroll_all(collection, (), dense=True)}
            old_points = {p.id: p for p in before[collection.name]}
            assert after.keys() == old_points.keys() and len(after) == (30 if collection is store.recall else 1)
            for point_id, point in after.items():
                assert point.payload == old_points[point_id].payload
                assert np.allclose(point.dense or [], old_points[point_id].dense or [], atol=1e-6)  # float32
        recall = QdrantRecallMemory(store.recall, embedder)
        assert (await recall.search(ALICE, "message 7", 0, Scope.PRIVATE)).hits[0].text == "message 7"
    finally:
        await store.close()
    assert (path / SET_ASIDE / "collection").is_dir() and not (path / "collection").exists()
    again = await open_qdrant(path=path, dimensions=384, embedder_name=embedder.name, prefix="membot_test")
    assert await again.recall.count(()) == 30
    await again.close()


async def test_membot_memory_migrate(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir)
    embedder = HashingEmbedder(settings.embedding_dimensions or 384)
    path = settings.data_dir / "qdrant"
    names = CollectionNames.with_prefix(settings.redis_prefix)
    local = ClientBackend(AsyncQdrantClient(path=str(path)), str(path))
    old = await open_store(local, names, embedder.dimensions, embedder.name)
    await QdrantRecallMemory(old.recall, embedder).add([recall_entry(ALICE, f"message {i}", i) for i in range(5)])
    await old.close()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MEMBOT_")}, **env_for(settings)}
    run = [sys.executable, "-m", "bot", "memory", "migrate"]
    done = await asyncio.to_thread(subprocess.run, run, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{names.recall}: 5 points migrated to Qdrant Edge" in done.stdout
    again = await asyncio.to_thread(subprocess.run, run, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.startswith("Nothing to migrate"), again.stderr
