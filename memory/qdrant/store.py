"""Qdrant plumbing shared by recall and archival: the client and the two collections (queries: memory/qdrant/search.py).

Both collections hold every agent's points (multitenancy by an ``agent`` keyword payload field, indexed with
``is_tenant=True`` on a server) and two named vectors: ``dense`` (cosine, the embedder's size) and ``sparse``
(BM25 term weights, ``Modifier.IDF``). Searches prefetch from both and fuse with RRF; every query is filtered by
agent, and by ``scope=public`` when made from a public context.

Both collections carry ``index_version`` in their metadata: the version of how texts become vectors (the
retrieval text, the context mixing, the sparse tokenizer). A collection indexed by an older version that holds
points is refused with instructions to run ``membot memory reindex``, which rebuilds every vector in place
from the stored payloads; an empty one is simply stamped with the current version.

``open_qdrant`` is the entry point: it connects and makes sure both collections exist. Embedded mode
(``path=<data_dir>/qdrant``) supports all of that (verified with qdrant-client 1.20), but payload
indexes have no effect there, so they are only created on a server; it is also one process at a time, and its
calls run synchronously on the event loop (fine for one user's memory, not for big imports).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import portalocker
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

DENSE = "dense"
SPARSE = "sparse"
MAX_RESULTS = 50  # hybrid searches rank at most this many matches (10 pages)
INDEX_VERSION = 2  # 1: raw text; 2: speaker-aware text, previous-message context, Snowball stems, b=0.3
REINDEX_COMMAND = "membot memory reindex"


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
    """An open Qdrant client and the names of membot's two collections (which exist)."""

    client: AsyncQdrantClient
    recall_collection: str
    archival_collection: str
    location: str  # the server URL or the embedded directory

    @property
    def embedded(self) -> bool:
        return is_embedded(self.client)

    async def close(self) -> None:
        """Close the client (frees the embedded directory for other processes)."""
        await self.client.close()


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
    """Connect (server at ``url`` = QDRANT_URL, else embedded at ``path``) and create/check both collections.

    ``embedder_name`` (e.g. ``embedder.name``) is recorded on new collections; an existing collection built by a
    different embedder, or of another size than ``dimensions``, raises ``QdrantSetupError``.
    """
    client = connect_qdrant(
        url=url, api_key=api_key, path=path, request_timeout=request_timeout, check_compatibility=check_compatibility
    )
    names = CollectionNames.with_prefix(prefix)
    try:
        await ensure_collections(client, names, dimensions, embedder_name)
    except (ResponseHandlingException, UnexpectedResponse) as exc:
        await client.close()
        raise QdrantUnavailableError(
            f"Cannot use Qdrant at {url} ({exc}). Start the server and check QDRANT_API_KEY, or unset QDRANT_URL "
            "to use embedded Qdrant."
        ) from None
    except BaseException:
        await client.close()
        raise
    tune_embedded_storage(client, (names.recall, names.archival))
    return QdrantStore(client, names.recall, names.archival, url or str(path))


def tune_embedded_storage(client: AsyncQdrantClient, collections: Iterable[str]) -> bool:
    """Switch embedded Qdrant's SQLite files to write-ahead logging with ``synchronous=NORMAL``.

    qdrant-client commits every point on its own, and with SQLite's defaults each commit waits for the disk
    (about 20 ms here, so at most ~50 points a second). In WAL mode a commit survives the process stopping or
    crashing and only the last ones can be lost if the machine itself loses power, which is the durability the
    rest of membot has (Redis without fsync on every write). Reaches into qdrant-client's local mode; returns
    False, changing nothing, when its internals are not as expected (a server, or a newer client).
    """
    local = getattr(client, "_client", None)
    stores = getattr(local, "collections", None)
    if not is_embedded(client) or not isinstance(stores, dict):
        return False
    tuned = False
    for name in collections:
        persistence = getattr(stores.get(name), "storage", None)
        connection = getattr(persistence, "storage", None)
        if isinstance(connection, sqlite3.Connection):
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            tuned = True
    return tuned


def connect_qdrant(
    *,
    url: str | None = None,
    api_key: str | None = None,
    path: Path | str | None = None,
    request_timeout: int = 30,
    check_compatibility: bool = True,
) -> AsyncQdrantClient:
    """A bare client: a server when ``url`` is given, else embedded Qdrant in the directory ``path``.

    ``check_compatibility`` (server only) compares client and server versions in a background thread.
    """
    if url:
        return AsyncQdrantClient(
            url=url, api_key=api_key, timeout=request_timeout, check_compatibility=check_compatibility
        )
    if path is None:
        raise ValueError("give a directory for embedded Qdrant (under MEMBOT_DATA_DIR), or a server URL (QDRANT_URL)")
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    in_use = QdrantInUseError(
        f"Embedded Qdrant at {directory} is in use by another membot process; stop it or set QDRANT_URL"
    )
    _check_unlocked(directory, in_use)
    try:
        return AsyncQdrantClient(path=str(directory))
    except RuntimeError as exc:  # lost a race with another process between the check and the open
        if "already accessed" in str(exc):
            raise in_use from None
        raise


def _check_unlocked(path: Path, in_use: QdrantInUseError) -> None:
    """Probe qdrant-client's ``.lock`` file so a locked directory fails cleanly (no leaked file handle)."""
    lock_file = path / ".lock"
    if not lock_file.exists():
        return
    with lock_file.open("r+") as handle:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            raise in_use from None
        portalocker.unlock(handle)


def is_embedded(client: AsyncQdrantClient) -> bool:
    options = client.init_options
    return options.get("path") is not None or options.get("location") == ":memory:"


RECALL_KEYWORDS = ("scope", "role", "platform", "channel")
ARCHIVAL_KEYWORDS = ("scope", "source", "text_hash")


async def ensure_collections(
    client: AsyncQdrantClient, names: CollectionNames, dimensions: int, embedder_name: str | None = None
) -> None:
    """Create both collections and their payload indexes if missing, or check that they fit (idempotent)."""
    await ensure_collection(client, names.recall, dimensions, embedder_name, RECALL_KEYWORDS)
    await ensure_collection(client, names.archival, dimensions, embedder_name, ARCHIVAL_KEYWORDS)


async def ensure_collection(
    client: AsyncQdrantClient,
    name: str,
    dimensions: int,
    embedder_name: str | None = None,
    keyword_fields: Iterable[str] = (),
) -> None:
    """Create one collection (dense + sparse/IDF vectors, indexes) or check that an existing one fits."""
    if await client.collection_exists(name):
        await _check_collection(client, name, dimensions, embedder_name)
    else:
        metadata: dict[str, Any] = {"dimensions": dimensions, "index_version": INDEX_VERSION}
        if embedder_name:
            metadata["embedder"] = embedder_name
        try:
            await client.create_collection(
                name,
                vectors_config={DENSE: models.VectorParams(size=dimensions, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                metadata=metadata,
            )
        except Exception:
            if not await client.collection_exists(name):  # not a lost race with another process: a real error
                raise
    if is_embedded(client):
        return  # payload indexes have no effect in embedded mode (and qdrant-client warns about them)
    existing = (await client.get_collection(name)).payload_schema
    wanted: dict[str, models.PayloadSchemaType | models.KeywordIndexParams] = {
        "agent": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
        "timestamp": models.PayloadSchemaType.DATETIME,
        **{field: models.PayloadSchemaType.KEYWORD for field in keyword_fields},
    }
    for field, schema in wanted.items():
        if field not in existing:
            await client.create_payload_index(name, field, field_schema=schema, wait=True)


async def _check_collection(client: AsyncQdrantClient, name: str, dimensions: int, embedder_name: str | None) -> None:
    config = (await client.get_collection(name)).config
    vectors = config.params.vectors
    dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
    sparse = (config.params.sparse_vectors or {}).get(SPARSE)
    if dense is None or sparse is None:
        raise QdrantSetupError(f"Qdrant collection {name!r} was not created by membot (no dense/sparse vectors)")
    built_with = (config.metadata or {}).get("embedder")
    if dense.size != dimensions or (built_with and embedder_name and built_with != embedder_name):
        configured = f"{embedder_name} ({dimensions} dims)" if embedder_name else f"a {dimensions}-dim embedder"
        raise QdrantSetupError(
            f"Qdrant collection {name!r} holds {dense.size}-dim vectors from {built_with or 'another embedder'}, "
            f"but membot is configured with {configured}. Set MEMBOT_EMBEDDER back, or export the memory, delete "
            "the collection and import it again."
        )
    version = int((config.metadata or {}).get("index_version", 1))
    if version > INDEX_VERSION:
        raise QdrantSetupError(
            f"Qdrant collection {name!r} was indexed by a newer membot (index version {version}, this one reads "
            f"{INDEX_VERSION}). Upgrade membot."
        )
    if version < INDEX_VERSION:
        if (await client.count(name, exact=True)).count == 0:
            await client.update_collection(name, metadata={**(config.metadata or {}), "index_version": INDEX_VERSION})
            return
        raise QdrantSetupError(
            f"Qdrant collection {name!r} was indexed by an older membot (index version {version}; this one needs "
            f"{INDEX_VERSION} for better search). Stop membot and run `{REINDEX_COMMAND}` once with the same "
            "settings: it rebuilds the search vectors in place from the stored messages and notes (nothing is lost)."
        )
