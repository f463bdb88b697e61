"""Embedders (without a model: hashing and OpenAI against a mock transport) and the BM25 sparse vectors."""

from __future__ import annotations

import json
import math

import httpx2 as httpx
import pytest
from openai import AsyncOpenAI

from memory.qdrant.embeddings import HashingEmbedder, LocalEmbedder, OpenAIEmbedder, build_embedder
from memory.qdrant.sparse import document_vector, query_vector, term_id, tokenize


async def test_hashing_embedder_is_deterministic_and_normalized() -> None:
    embedder = HashingEmbedder()
    first, second, empty = await embedder.embed(["Dogs are great", "dogs are GREAT!", ""])
    assert len(first) == 384 and first == second
    assert math.isclose(sum(x * x for x in first), 1.0)
    assert math.isclose(sum(x * x for x in empty), 1.0)
    assert await embedder.embed([]) == []
    assert (await HashingEmbedder(64).embed(["x y"]))[0].__len__() == 64


async def test_build_embedder() -> None:
    assert isinstance(build_embedder("hashing"), HashingEmbedder)
    local = build_embedder(" Local ")
    assert isinstance(local, LocalEmbedder) and local.dimensions == 384
    openai = build_embedder("openai", openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1")
    assert isinstance(openai, OpenAIEmbedder) and openai.dimensions == 1536 and openai.name.startswith("openai:")
    with pytest.raises(ValueError, match="set MEMBOT_EMBEDDER to one of local, openai, hashing"):
        build_embedder("word2vec")
    await openai.aclose()
    unknown = build_embedder("openai", openai_model="my-embedder", openai_api_key="sk-test")
    assert isinstance(unknown, OpenAIEmbedder) and unknown.dimensions == 0  # asked of the server at start
    await unknown.aclose()


async def test_openai_embedder_batches_and_orders() -> None:
    requests: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), float(i)]}
            for i, text in enumerate(body["input"])
        ]
        return httpx.Response(200, json={"object": "list", "data": data[::-1], "model": body["model"], "usage": {}})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AsyncOpenAI(api_key="sk-test", base_url="http://stand-in/v1", http_client=http)
    embedder = OpenAIEmbedder("custom-model", dimensions=2, batch_size=2, client=client)
    try:
        vectors = await embedder.embed(["a", "bb", "", "dddd"])
    finally:
        await embedder.aclose()
    assert vectors == [[1.0, 0.0], [2.0, 1.0], [1.0, 0.0], [4.0, 1.0]]  # "" is sent as " "
    assert [r["input"] for r in requests] == [["a", "bb"], [" ", "dddd"]]
    assert requests[0]["dimensions"] == 2 and requests[0]["model"] == "custom-model"


def test_tokenize_drops_stopwords_and_stems() -> None:
    assert tokenize("What are Biscuit's favourite TOYS? 2 balls & a rope, d'accord") == [
        "biscuit",
        "favourit",
        "toy",
        "2",
        "ball",
        "rope",
        "daccord",
    ]
    assert tokenize("Ünïcode wörter, 東京") == ["ünïcode", "wörter", "東京"]
    # Snowball (Porter 2) stems: inflections of one word meet
    assert tokenize("painting paints painted") == ["paint"] * 3
    assert tokenize("stories story") == ["stori"] * 2


def test_sparse_vectors() -> None:
    doc = document_vector("dog dog cat")
    assert doc.indices == sorted({term_id("dog"), term_id("cat")})
    weights = dict(zip(doc.indices, doc.values, strict=True))
    assert weights[term_id("dog")] > weights[term_id("cat")] > 0
    long_doc = document_vector("cat " + " ".join(f"word{i}" for i in range(60)))
    assert dict(zip(long_doc.indices, long_doc.values, strict=True))[term_id("cat")] < weights[term_id("cat")]
    query = query_vector("the dogs and the dog")
    assert (query.indices, query.values) == ([term_id("dog")], [1.0])
    assert not query_vector("the and of")
    assert term_id("dog") == 19675517 and 0 <= term_id("x" * 100) < 2**31  # stable across processes
