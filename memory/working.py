"""Working memory on Redis: the agent's message queue and the recursive summary of what was evicted from it.

The queue is a list of ``ChatMessage.to_json()``. Reading it is the hottest memory operation (every step of
every turn), so each process keeps the parsed queues it read last and, on the next read, fetches only the
messages appended since. That is safe because the queue only ever grows at the end, except on eviction and
erase, which replace or delete the queue's *generation* (a random token stored next to it): a cached copy is
used only while the generation it was read under is still current.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bot.events import AgentKey, Scope
from bot.llm.types import ChatMessage
from memory.keys import RedisKeys
from memory.redis_client import AsyncRedis

CACHED_QUEUES = 256  # parsed queues kept per process (the agents that spoke last)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisWorkingMemory:
    """``WorkingMemory`` on Redis: the queue (a list), the summary (a string) and the pressure-alert flag."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._cache: OrderedDict[str, tuple[str, list[ChatMessage]]] = OrderedDict()

    async def messages(self, agent: AgentKey) -> list[ChatMessage]:
        key = str(agent)
        cached = self._cache.get(key)
        if cached is not None:
            generation, tail = await self._read(agent, len(cached[1]))
            if generation == cached[0]:
                messages = cached[1] + [ChatMessage.from_json(item) for item in tail]
                self._remember(key, generation, messages)
                return list(messages)
        generation, raw = await self._read(agent, 0)
        messages = [ChatMessage.from_json(item) for item in raw]
        if generation is not None:
            self._remember(key, generation, messages)
        return list(messages)

    async def _read(self, agent: AgentKey, start: int) -> tuple[str | None, list[Any]]:
        """The queue's generation and its items from ``start`` on, read atomically."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._keys.queue_generation(agent))
            pipe.lrange(self._keys.queue(agent), start, -1)
            generation, raw = await pipe.execute()
        return (None if generation is None else _text(generation)), raw

    def _remember(self, key: str, generation: str, messages: list[ChatMessage]) -> None:
        self._cache[key] = (generation, messages)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHED_QUEUES:
            self._cache.popitem(last=False)

    async def append(self, agent: AgentKey, messages: Sequence[ChatMessage]) -> None:
        if not messages:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._keys.queue(agent), *(m.to_json() for m in messages))
            pipe.set(self._keys.queue_generation(agent), uuid.uuid4().hex, nx=True)
            await pipe.execute()

    async def summary(self, agent: AgentKey, scope: Scope = Scope.PRIVATE) -> str:
        key = self._keys.summary_public(agent) if scope is Scope.PUBLIC else self._keys.summary(agent)
        raw = await self._redis.get(key)
        return "" if raw is None else _text(raw)

    async def evict(self, agent: AgentKey, count: int, new_summary: str, new_public_summary: str) -> None:
        """Atomically (MULTI/EXEC) drop the oldest ``count`` messages, store both summaries, clear the pressure
        flag."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._cache.pop(str(agent), None)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.ltrim(self._keys.queue(agent), count, -1)
            pipe.set(self._keys.queue_generation(agent), uuid.uuid4().hex)
            pipe.set(self._keys.summary(agent), new_summary)
            pipe.set(self._keys.summary_public(agent), new_public_summary)
            pipe.delete(self._keys.pressure_alerted(agent))
            await pipe.execute()

    async def pressure_alerted(self, agent: AgentKey) -> bool:
        """Whether the memory-pressure alert was already raised in this eviction cycle."""
        return bool(await self._redis.exists(self._keys.pressure_alerted(agent)))

    async def set_pressure_alerted(self, agent: AgentKey) -> None:
        await self._redis.set(self._keys.pressure_alerted(agent), "1")

    async def rewrite(self, agent: AgentKey, redact: Callable[[str], str]) -> int:
        """Pass every queued message's texts (content, tool-call arguments' strings) and both summaries through
        ``redact``; store the changes at once (MULTI/EXEC, a new queue generation). Callers hold the agent's lock,
        so no turn appends meanwhile. Return how many texts changed."""
        queue_key = self._keys.queue(agent)
        summary_keys = (self._keys.summary(agent), self._keys.summary_public(agent))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(queue_key, 0, -1)
            pipe.mget(summary_keys)
            raw, summaries = await pipe.execute()
        changed = 0
        items: list[str] = []
        for item in raw:
            message = ChatMessage.from_json(item)
            redacted = _redact_message(message, redact)
            changed += redacted != message
            items.append(redacted.to_json() if redacted != message else _text(item))
        new_summaries: dict[str, str] = {}
        for key, value in zip(summary_keys, summaries, strict=True):
            if value is not None and redact(_text(value)) != _text(value):
                new_summaries[key] = redact(_text(value))
        changed += len(new_summaries)
        if not changed:
            return 0
        self._cache.pop(str(agent), None)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(queue_key)
            if items:
                pipe.rpush(queue_key, *items)
            pipe.set(self._keys.queue_generation(agent), uuid.uuid4().hex)
            for key, value in new_summaries.items():
                pipe.set(key, value)
            await pipe.execute()
        return changed

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        summary, public = await self.summary(agent), await self.summary(agent, Scope.PUBLIC)
        items: list[dict[str, Any]] = [{"kind": "summary", "text": summary}] if summary else []
        if public:
            items.append({"kind": "public_summary", "text": public})
        raw = await self._redis.lrange(self._keys.queue(agent), 0, -1)
        items.extend({"kind": "queued_message", **json.loads(item)} for item in raw)
        return items

    async def erase(self, agent: AgentKey) -> int:
        """Remove the queue, the summary and the pressure flag; return messages removed (+1 for a summary)."""
        self._cache.pop(str(agent), None)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.llen(self._keys.queue(agent))
            pipe.exists(self._keys.summary(agent))
            pipe.delete(
                self._keys.queue(agent),
                self._keys.queue_generation(agent),
                self._keys.summary(agent),
                self._keys.summary_public(agent),
                self._keys.pressure_alerted(agent),
            )
            queued, has_summary, _ = await pipe.execute()
        return int(queued) + int(has_summary)


def _redact_message(message: ChatMessage, redact: Callable[[str], str]) -> ChatMessage:
    calls = tuple(replace(call, arguments=_redact_arguments(call.arguments, redact)) for call in message.tool_calls)
    return replace(message, content=redact(message.content), tool_calls=calls)


def _redact_arguments(arguments: str, redact: Callable[[str], str]) -> str:
    """Redact the string values of a tool call's JSON arguments (the raw text when it is not JSON)."""
    try:
        data = json.loads(arguments)
    except ValueError:
        return redact(arguments)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    redacted = walk(data)
    return arguments if redacted == data else json.dumps(redacted, ensure_ascii=False)
