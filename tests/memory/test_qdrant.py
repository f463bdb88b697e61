"""Opening Qdrant and setting up collections (embedded mode)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from bot.core.events import Scope
from memory.qdrant.embeddings import HashingEmbedder
from memory.qdrant.recall import QdrantRecallMemory
from memory.qdrant.search import from_rfc3339, to_rfc3339
from memory.qdrant.store import (
    CollectionNames,
    QdrantInUseError,
    QdrantSetupError,
    QdrantStore,
    QdrantUnavailableError,
    ensure_collections,
    open_backend,
    open_qdrant,
)
from tests.memory.helpers import ALICE, T0, recall_entry

REPO = Path(__file__).resolve().parents[2]


async def test_open_is_idempotent_and_data_survives_a_restart(data_dir: Path) -> None:
    embedder = HashingEmbedder()
    path = data_dir / "qdrant"
    store = await open_qdrant(path=path, dimensions=384, embedder_name=embedder.name)
    try:
        assert store.embedded and store.location == str(path)
        assert (store.recall_collection, store.archival_collection) == ("membot_recall", "membot_archival")
        await ensure_collections(store.backend, CollectionNames.with_prefix("membot"), 384, embedder.name)
        recall = QdrantRecallMemory(store.recall, embedder)
        await recall.add([recall_entry(ALICE, "remember me", 0)])
    finally:
        await store.close()
    store = await open_qdrant(path=path, dimensions=384, embedder_name=embedder.name)
    try:
        recall = QdrantRecallMemory(store.recall, embedder)
        assert (await recall.search(ALICE, "remember", 0, Scope.PRIVATE)).hits[0].text == "remember me"
    finally:
        await store.close()


async def test_wrong_embedder_for_existing_collections_is_refused(store: QdrantStore, data_dir: Path) -> None:
    names = CollectionNames(store.recall_collection, store.archival_collection)
    with pytest.raises(QdrantSetupError, match=r"384-dim vectors from hashing-384.*hashing-128 \(128 dims\)"):
        await ensure_collections(store.backend, names, 128, "hashing-128")
    with pytest.raises(QdrantSetupError, match="MEMBOT_EMBEDDER"):
        await ensure_collections(store.backend, names, 384, "local:all-MiniLM-L6-v2")
    await ensure_collections(store.backend, names, 384)  # no name given: only the size is checked
    with pytest.raises(QdrantSetupError, match="a 768-dim embedder"):
        await ensure_collections(store.backend, names, 768)


async def test_locked_directory_gives_a_clear_error(store: QdrantStore, data_dir: Path) -> None:
    with pytest.raises(QdrantInUseError) as err:
        await open_qdrant(path=data_dir / "qdrant", dimensions=384)
    assert str(err.value) == (
        f"Embedded Qdrant at {data_dir / 'qdrant'} is in use by another membot process; stop it or set QDRANT_URL"
    )


async def test_locked_by_another_process(data_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from memory.qdrant.store import open_qdrant

        async def main():
            store = await open_qdrant(path={str(data_dir / "qdrant")!r}, dimensions=384)
            print("open", flush=True)
            sys.stdin.readline()
            await store.close()

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"open"
        with pytest.raises(QdrantInUseError, match="in use by another membot process"):
            await open_qdrant(path=data_dir / "qdrant", dimensions=384)
    finally:
        child.stdin.write(b"\n")
        await child.stdin.drain()
        assert await child.wait() == 0
    store = await open_qdrant(path=data_dir / "qdrant", dimensions=384)  # free once the other process closed it
    await store.close()


async def test_open_needs_a_place() -> None:
    with pytest.raises(ValueError, match="QDRANT_URL"):
        await open_qdrant(dimensions=384)


async def test_unreachable_server_gives_a_clear_error() -> None:
    backend = open_backend(url="http://127.0.0.1:1", check_compatibility=False)
    assert not backend.embedded
    await backend.close()
    with pytest.raises(QdrantUnavailableError, match=r"Cannot use Qdrant at http://127\.0\.0\.1:1 .*unset QDRANT_URL"):
        await open_qdrant(url="http://127.0.0.1:1", dimensions=384, check_compatibility=False, request_timeout=2)


def test_timestamps_are_fixed_width_utc() -> None:
    assert to_rfc3339(T0) == "2024-03-01T09:00:00.000000Z"
    assert to_rfc3339(T0.replace(tzinfo=None)) == "2024-03-01T09:00:00.000000Z"
    assert from_rfc3339(to_rfc3339(T0)) == T0


def test_collection_prefix_is_validated() -> None:
    with pytest.raises(ValueError):
        CollectionNames.with_prefix("bad name")
