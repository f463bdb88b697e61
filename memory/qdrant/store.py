"""Qdrant plumbing shared by recall and archival: the backend and the two collections (queries: ``search.py``).

Both collections hold every agent's points (multitenancy by an ``agent`` keyword payload field, a tenant index)
and two named vectors: ``dense`` (cosine, the embedder's size) and ``sparse`` (BM25 term weights, IDF modifier).
Searches prefetch from both and fuse with RRF; every query is filtered by agent, and by ``scope=public`` when made
from a public context.

Both collections carry ``index_version`` in their metadata: the version of how texts become vectors (the
retrieval text, the context mixing, the sparse tokenizer). A collection indexed by an older version that holds
points is refused with instructions to run ``membot memory reindex``, which rebuilds every vector in place
from the stored payloads; an empty one is simply stamped with the current version.

``open_qdrant`` is the entry point: it opens a backend (``memory.qdrant.backend``) and makes sure both collections
exist. Embedded (``path=<data_dir>/qdrant``) is Qdrant Edge in this process (``memory.qdrant.edge_backend``: HNSW
and payload indexes, a WAL, every call in a worker thread), one process at a time; with ``url`` (QDRANT_URL) it is
a Qdrant server through qdrant-client (``memory.qdrant.client_backend``). A store left by qdrant-client's former
local mode in the same directory is migrated to Edge first (``memory.qdrant.migrate``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import portalocker
from qdrant_client import AsyncQdrantClient, QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from memory.qdrant.backend import DENSE, SPARSE, VectorBackend, VectorCollection
from memory.qdrant.client_backend import ClientBackend
from memory.qdrant.edge_backend import EdgeBackend, EdgeLocked

__all__ = ["DENSE", "SPARSE"]

MAX_RESULTS = 50  # hybrid searches rank at most this many matches (10 pages)
INDEX_VERSION = 2  # 1: raw text; 2: speaker-aware text, previous-message context, Snowball stems, b=0.3
REINDEX_COMMAND = "membot memory reindex"
RECALL_KEYWORDS = ("scope", "role", "platform", "channel")
ARCHIVAL_KEYWORDS = ("scope", "source", "text_hash")


class QdrantInUseError(RuntimeError):
    """The embedded Qdrant directory is locked by another process (or another client in this one)."""


class QdrantUnavailableError(RuntimeError):
    """The Qdrant server at QDRANT_URL cannot be reached or refused the request."""


class QdrantSetupError(RuntimeError):
    """An existing collection does not fit the configured embedder."""


@dataclass(frozen=True)
class CollectionNames:
    recall: str
    archival: str

    @classmethod
    def with_prefix(cls, prefix: str = "membot") -> CollectionNames:
        """``<prefix>_recall`` and ``<prefix>_archival`` (tests pass a unique prefix)."""
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", prefix):
            raise ValueError(f"invalid collection prefix {prefix!r}: use letters, digits, '_' or '-'")
        return cls(f"{prefix}_recall", f"{prefix}_archival")


@dataclass(frozen=True)
class QdrantStore:
    """An open backend and membot's two collections (which exist)."""

    backend: VectorBackend
    recall: VectorCollection
    archival: VectorCollection

    @property
    def recall_collection(self) -> str:
        return self.recall.name

    @property
    def archival_collection(self) -> str:
        return self.archival.name

    @property
    def location(self) -> str:
        """The server URL or the embedded directory."""
        return self.backend.location

    @property
    def embedded(self) -> bool:
        return self.backend.embedded

    async def close(self) -> None:
        """Flush and close (frees the embedded directory for other processes)."""
        await self.backend.close()


async def open_qdrant(
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: Path | str | None = None,
    dimensions: int,
    embedder_name: str | None = None,
    prefix: str = "membot",
    request_timeout: int = 30,
    check_compatibility: bool = True,
) -> QdrantStore:
    """Open a backend (server at ``url`` = QDRANT_URL, else embedded Edge at ``path``) and create/check both
    collections; an embedded directory still holding a former local-mode store is migrated first.

    ``embedder_name`` (e.g. ``embedder.name``) is recorded on new collections; an existing collection built by a
    different embedder, or of another size than ``dimensions``, raises ``QdrantSetupError``.
    """
    backend = open_backend(
        url=url, api_key=api_key, path=path, request_timeout=request_timeout, check_compatibility=check_compatibility
    )
    names = CollectionNames.with_prefix(prefix)
    try:
        if isinstance(backend, EdgeBackend):
            from memory.qdrant.migrate import migrate_local_store  # the migration needs the store's checks

            await migrate_local_store(backend, names)
        return await open_store(backend, names, dimensions, embedder_name)
    except (ResponseHandlingException, UnexpectedResponse) as exc:
        await backend.close()
        raise QdrantUnavailableError(
            f"Cannot use Qdrant at {url} ({exc}). Start the server and check QDRANT_API_KEY, or unset QDRANT_URL "
            "to use embedded Qdrant."
        ) from None
    except BaseException:
        await backend.close()
        raise


async def open_store(
    backend: VectorBackend, names: CollectionNames, dimensions: int, embedder_name: str | None = None
) -> QdrantStore:
    """Create or check both collections of an open backend (idempotent); it is not closed on failure."""
    await ensure_collections(backend, names, dimensions, embedder_name)
    return QdrantStore(backend, await backend.collection(names.recall), await backend.collection(names.archival))


def open_backend(
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: Path | str | None = None,
    request_timeout: int = 30,
    check_compatibility: bool = True,
) -> VectorBackend:
    """A server through qdrant-client when ``url`` is given, else Qdrant Edge in the directory ``path``.

    ``check_compatibility`` (server only) compares client and server versions in a background thread.
    """
    if url:
        client = AsyncQdrantClient(
            url=url, api_key=api_key, timeout=request_timeout, check_compatibility=check_compatibility
        )
        return ClientBackend(client, url)
    if path is None:
        raise ValueError("give a directory for embedded Qdrant (under MEMBOT_DATA_DIR), or a server URL (QDRANT_URL)")
    directory = Path(path)
    try:
        return EdgeBackend.open(directory)
    except EdgeLocked:
        raise in_use(directory) from None


def in_use(directory: Path) -> QdrantInUseError:
    return QdrantInUseError(
        f"Embedded Qdrant at {directory} is in use by another membot process; stop it or set QDRANT_URL"
    )


def connect_local(path: Path) -> AsyncQdrantClient:
    """qdrant-client's local mode on ``path`` (a store of membot before Qdrant Edge; migration and tests)."""
    path.mkdir(parents=True, exist_ok=True)
    _check_unlocked(path, in_use(path))
    try:
        return AsyncQdrantClient(path=str(path))
    except RuntimeError as exc:  # lost a race with another process between the check and the open
        if "already accessed" in str(exc):
            raise in_use(path) from None
        raise


def connect_local_sync(path: Path) -> QdrantClient:
    """The synchronous client of qdrant-client's local mode on ``path`` (to migrate it, in a worker thread)."""
    _check_unlocked(path, in_use(path))
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise in_use(path) from None
        raise


def _check_unlocked(path: Path, error: QdrantInUseError) -> None:
    """Probe qdrant-client's ``.lock`` file so a locked directory fails cleanly (no leaked file handle)."""
    lock_file = path / ".lock"
    if not lock_file.exists():
        return
    with lock_file.open("r+") as handle:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            raise error from None
        portalocker.unlock(handle)


async def ensure_collections(
    backend: VectorBackend, names: CollectionNames, dimensions: int, embedder_name: str | None = None
) -> None:
    """Create both collections and their payload indexes if missing, or check that they fit (idempotent)."""
    await ensure_collection(backend, names.recall, dimensions, embedder_name, RECALL_KEYWORDS)
    await ensure_collection(backend, names.archival, dimensions, embedder_name, ARCHIVAL_KEYWORDS)


async def ensure_collection(
    backend: VectorBackend,
    name: str,
    dimensions: int,
    embedder_name: str | None = None,
    keyword_fields: tuple[str, ...] = (),
) -> None:
    """Create one collection (dense + sparse/IDF vectors, indexes) or check that an existing one fits."""
    if await backend.exists(name):
        await _check_collection(backend, name, dimensions, embedder_name)
        await backend.ensure_indexes(name, keyword_fields)
        return
    metadata: dict[str, Any] = {"dimensions": dimensions, "index_version": INDEX_VERSION}
    if embedder_name:
        metadata["embedder"] = embedder_name
    try:
        await backend.create(name, dimensions=dimensions, metadata=metadata, keyword_fields=keyword_fields)
    except Exception:
        if not await backend.exists(name):  # not a lost race with another process: a real error
            raise


async def _check_collection(backend: VectorBackend, name: str, dimensions: int, embedder_name: str | None) -> None:
    collection = await backend.collection(name)
    info = await collection.info()
    if info.dense_size is None or not info.has_sparse:
        raise QdrantSetupError(f"Qdrant collection {name!r} was not created by membot (no dense/sparse vectors)")
    built_with = info.metadata.get("embedder")
    if info.dense_size != dimensions or (built_with and embedder_name and built_with != embedder_name):
        configured = f"{embedder_name} ({dimensions} dims)" if embedder_name else f"a {dimensions}-dim embedder"
        raise QdrantSetupError(
            f"Qdrant collection {name!r} holds {info.dense_size}-dim vectors from {built_with or 'another embedder'}, "
            f"but membot is configured with {configured}. Set MEMBOT_EMBEDDER back, or export the memory, delete "
            "the collection and import it again."
        )
    version = int(info.metadata.get("index_version", 1))
    if version > INDEX_VERSION:
        raise QdrantSetupError(
            f"Qdrant collection {name!r} was indexed by a newer membot (index version {version}, this one reads "
            f"{INDEX_VERSION}). Upgrade membot."
        )
    if version < INDEX_VERSION:
        if await collection.count(()) == 0:
            await collection.set_metadata({**info.metadata, "index_version": INDEX_VERSION})
            return
        raise QdrantSetupError(
            f"Qdrant collection {name!r} was indexed by an older membot (index version {version}; this one needs "
            f"{INDEX_VERSION} for better search). Stop membot and run `{REINDEX_COMMAND}` once with the same "
            "settings: it rebuilds the search vectors in place from the stored messages and notes (nothing is lost)."
        )
