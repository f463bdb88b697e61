"""Whole-store scans for the isolation suite: EVERY Redis key under the test's prefix and EVERY Qdrant point of every
collection, read with the raw clients (not membot's own APIs), and the checks made on them.

Each person's words carry a canary: a made-up token (``ANNLOCK4411``) that appears nowhere else. A canary may only
be found in keys named with its owner's agent (``<prefix>:<kind>:{<agent key>}``) and in points whose ``agent``
payload is its owner; a canary told in private may only be in points of scope ``private``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import qdrant_edge
import redis.asyncio as aioredis

from bot.core.events import AgentKey
from memory.qdrant.backend import VectorBackend
from memory.qdrant.client_backend import ClientBackend
from memory.qdrant.edge_backend import EdgeBackend
from tests.standins.llm_server import ObservedRequest

FIGURES: list[str] = []  # "test: N keys, M points" per scan, printed at the end of each test (pytest -s)


async def dump(redis: aioredis.Redis, key: bytes) -> str:
    """Everything a key holds, as text, whatever its type."""
    kind = (await redis.type(key)).decode()
    value: Any
    if kind == "string":
        value = await redis.get(key)
    elif kind == "hash":
        value = await redis.hgetall(key)
    elif kind == "list":
        value = await redis.lrange(key, 0, -1)
    elif kind == "set":
        value = sorted(await redis.smembers(key))
    elif kind == "zset":
        value = await redis.zrange(key, 0, -1)
    elif kind == "stream":
        value = await redis.xrange(key)
    else:
        value = kind
    return repr(value)


@dataclass
class Snapshot:
    """Every key (name → contents) under a prefix and every point (collection, id, payload) in Qdrant."""

    keys: dict[str, str]
    points: list[dict[str, Any]]

    def keys_with(self, needle: str) -> list[str]:
        return [name for name, contents in self.keys.items() if needle in name or needle in contents]

    def points_with(self, needle: str) -> list[dict[str, Any]]:
        return [point for point in self.points if needle in json.dumps(point, ensure_ascii=False)]

    def of(self, agent: AgentKey) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """The keys named with ``agent`` and the points whose agent is ``agent`` (locks left out: they come and go)."""
        tag = f"{{{agent}}}"
        keys = {name: value for name, value in self.keys.items() if tag in name and ":lock:" not in name}
        points = sorted((p for p in self.points if p.get("agent") == str(agent)), key=lambda p: p["id"])
        return keys, points


async def snapshot(redis: aioredis.Redis, prefix: str, qdrant: VectorBackend) -> Snapshot:
    keys: dict[str, str] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        keys[key.decode()] = await dump(redis, key)
    return Snapshot(keys, await qdrant_points(qdrant))


async def qdrant_points(qdrant: VectorBackend) -> list[dict[str, Any]]:
    """Every point of every collection (collection, id, payload), read from the raw Edge shards (embedded) or with
    the raw qdrant-client (a server)."""
    points: list[dict[str, Any]] = []
    if isinstance(qdrant, EdgeBackend):
        for name, shard in qdrant.shards().items():
            offset: Any = None
            while True:
                batch, offset = shard.scroll(qdrant_edge.ScrollRequest(offset=offset, limit=256, with_payload=True))
                points.extend({"collection": name, "id": str(p.id), **(p.payload or {})} for p in batch)
                if offset is None:
                    break
        return points
    assert isinstance(qdrant, ClientBackend)
    for collection in (await qdrant.client.get_collections()).collections:
        offset = None
        while True:
            batch, offset = await qdrant.client.scroll(collection.name, limit=256, offset=offset, with_payload=True)
            points.extend({"collection": collection.name, "id": str(p.id), **(p.payload or {})} for p in batch)
            if offset is None:
                break
    return points


def assert_confined(scan: Snapshot, owners: Mapping[str, AgentKey], private: Iterable[str] = ()) -> None:
    """Each canary is only in its owner's keys and points (and only in private points when told in private)."""
    private = set(private)
    for canary, owner in owners.items():
        keys, points = scan.keys_with(canary), scan.points_with(canary)
        assert keys or points, f"{canary} is stored somewhere (else the check proves nothing)"
        strays = [name for name in keys if f"{{{owner}}}" not in name]
        assert not strays, f"{canary} of {owner} is in keys of others: {strays}"
        foreign = [(p["collection"], p.get("agent")) for p in points if p.get("agent") != str(owner)]
        assert not foreign, f"{canary} of {owner} is in points of others: {foreign}"
        if canary in private:
            public = [p["id"] for p in points if p.get("scope") != "private"]
            assert not public, f"{canary} was told in private but is in public points {public}"


def record(test: str, scan: Snapshot) -> None:
    line = f"isolation scan {test}: {len(scan.keys)} Redis keys, {len(scan.points)} Qdrant points"
    FIGURES.append(line)
    print(line)


def request_text(request: ObservedRequest) -> str:
    """Everything the model was given in one request: system prompt, messages, tool calls and results."""
    parts = [request.system]
    for message in request.messages:
        parts.append(str(message.get("content")))
        parts.extend(str(call) for call in message.get("tool_calls") or [])
    return "\n".join(parts)


def tool_results(requests: list[ObservedRequest], marker: str) -> list[str]:
    """The function results of the turn that began with the user message containing ``marker``, as the model
    received them (the turn's last request holds them all, after that message)."""
    messages = requests[-1].messages
    start = max(i for i, m in enumerate(messages) if m["role"] == "user" and marker in str(m["content"]))
    return [str(m["content"]) for m in messages[start:] if m["role"] == "tool"]


def leaks(texts: Iterable[str], canaries: Iterable[str]) -> list[str]:
    """The canaries found in any of ``texts``."""
    joined = "\n".join(texts)
    return [canary for canary in canaries if canary in joined]
