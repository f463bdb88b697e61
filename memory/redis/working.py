"""Working memory on Redis: the agent's message queue and the recursive summary of what was evicted from it.

The queue is a list of ``ChatMessage.to_json()``. Reading it is the hottest memory operation (every step of
every turn), so each process keeps the parsed queues it read last and, on the next read, fetches only the
messages appended since. That is safe because the queue only ever grows at the end, except on eviction, erase and
quarantine, which replace or delete the queue's *generation* (a random token stored next to it): a cached copy is
used only while the generation it was read under is still current.

Writes are scripts that take the turn's fencing token (``memory.redis.fencing``) and write nothing once the agent's lock
is no longer the turn's. An entry or summary that does not parse is moved to the agent's quarantine
(``memory.redis.quarantine``) when it is read, and the rest is returned.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import Fence, fence_token
from bot.llm.types import ChatMessage
from memory.redis.client import AsyncRedis
from memory.redis.fencing import guard_lua, refused_as_lock_lost
from memory.redis.keys import RedisKeys
from memory.redis.quarantine import RedisQuarantine, reason_of, wrong_types_set_aside

CACHED_QUEUES = 256  # parsed queues kept per process (the agents that spoke last)
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError)  # UnicodeDecodeError and JSON errors are ValueErrors

# KEYS: queue, generation, lock. ARGV: token, new generation, messages...
_APPEND = (
    guard_lua("KEYS[3]", "ARGV[1]")
    + """
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('SET', KEYS[2], ARGV[2], 'NX')
return 1
"""
)

# KEYS: queue, generation, summary, public summary, pressure flag, lock.
# ARGV: token, count, new generation, summary, public summary.
_EVICT = (
    guard_lua("KEYS[6]", "ARGV[1]")
    + """
redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], ARGV[5])
redis.call('DEL', KEYS[5])
return 1
"""
)

# KEYS: pressure flag, lock. ARGV: token.
_SET_FLAG = guard_lua("KEYS[2]", "ARGV[1]") + "redis.call('SET', KEYS[1], '1')\nreturn 1\n"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisWorkingMemory:
    """``WorkingMemory`` on Redis: the queue (a list), the summary (a string) and the pressure-alert flag."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys, quarantine: RedisQuarantine | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._quarantine = quarantine or RedisQuarantine(redis, keys)
        self._cache: OrderedDict[str, tuple[str, list[ChatMessage]]] = OrderedDict()
        self._append = redis.register_script(_APPEND)
        self._evict = redis.register_script(_EVICT)
        self._set_flag = redis.register_script(_SET_FLAG)

    @property
    def quarantine(self) -> RedisQuarantine:
        return self._quarantine

    def typed_keys(self, agent: AgentKey) -> dict[str, tuple[str, str]]:
        """The agent's working-memory keys and their Redis types (a mistyped one is quarantined)."""
        k = self._keys
        return {
            k.queue(agent): ("queue", "list"),
            k.queue_generation(agent): ("queue_generation", "string"),
            k.summary(agent): ("summary", "string"),
            k.summary_public(agent): ("public_summary", "string"),
            k.pressure_alerted(agent): ("pressure_flag", "string"),
        }

    @wrong_types_set_aside
    async def messages(self, agent: AgentKey) -> list[ChatMessage]:
        key = str(agent)
        cached = self._cache.get(key)
        if cached is not None:
            generation, tail = await self._read(agent, len(cached[1]))
            if generation == cached[0]:
                parsed = await self._parse(agent, tail)
                if parsed is not None:
                    messages = cached[1] + parsed
                    self._remember(key, generation, messages)
                    return list(messages)
        while True:  # each round quarantines what did not parse, then reads again
            generation, raw = await self._read(agent, 0)
            parsed = await self._parse(agent, raw)
            if parsed is not None:
                break
        if generation is not None:
            self._remember(key, generation, parsed)
        return list(parsed)

    async def _parse(self, agent: AgentKey, raw: Sequence[Any]) -> list[ChatMessage] | None:
        """The parsed messages; None when some did not parse (they were quarantined: read the queue again)."""
        messages: list[ChatMessage] = []
        bad = False
        for item in raw:
            try:
                messages.append(ChatMessage.from_json(_text(item)))
            except _UNREADABLE as exc:
                bad = True
                self._cache.pop(str(agent), None)
                await self._quarantine.move(
                    agent,
                    store="queue",
                    key=self._keys.queue(agent),
                    where="list",
                    raw=item,
                    reason=reason_of(exc),
                    generation=(self._keys.queue_generation(agent), uuid.uuid4().hex),
                )
        return None if bad else messages

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

    @wrong_types_set_aside
    async def append(self, agent: AgentKey, messages: Sequence[ChatMessage], *, fence: Fence | None = None) -> None:
        if not messages:
            return
        keys = [self._keys.queue(agent), self._keys.queue_generation(agent), self._keys.lock(agent)]
        args = [fence_token(fence, agent), uuid.uuid4().hex, *(m.to_json() for m in messages)]
        with refused_as_lock_lost(fence):
            await self._append(keys=keys, args=args)

    @wrong_types_set_aside
    async def summary(self, agent: AgentKey, scope: Scope = Scope.PRIVATE) -> str:
        key = self._keys.summary_public(agent) if scope is Scope.PUBLIC else self._keys.summary(agent)
        while True:
            raw = await self._redis.get(key)
            if raw is None:
                return ""
            try:
                return _text(raw)
            except UnicodeDecodeError as exc:
                store = "public_summary" if scope is Scope.PUBLIC else "summary"
                await self._quarantine.move(agent, store=store, key=key, where="string", raw=raw, reason=reason_of(exc))

    @wrong_types_set_aside
    async def evict(
        self, agent: AgentKey, count: int, new_summary: str, new_public_summary: str, *, fence: Fence | None = None
    ) -> None:
        """Atomically drop the oldest ``count`` messages, store both summaries, clear the pressure flag."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._cache.pop(str(agent), None)
        k = self._keys
        keys = [
            k.queue(agent),
            k.queue_generation(agent),
            k.summary(agent),
            k.summary_public(agent),
            k.pressure_alerted(agent),
            k.lock(agent),
        ]
        args: list[str | int] = [fence_token(fence, agent), count, uuid.uuid4().hex, new_summary, new_public_summary]
        with refused_as_lock_lost(fence):
            await self._evict(keys=keys, args=args)

    @wrong_types_set_aside
    async def pressure_alerted(self, agent: AgentKey) -> bool:
        """Whether the memory-pressure alert was already raised in this eviction cycle."""
        return bool(await self._redis.exists(self._keys.pressure_alerted(agent)))

    @wrong_types_set_aside
    async def set_pressure_alerted(self, agent: AgentKey, *, fence: Fence | None = None) -> None:
        keys = [self._keys.pressure_alerted(agent), self._keys.lock(agent)]
        with refused_as_lock_lost(fence):
            await self._set_flag(keys=keys, args=[fence_token(fence, agent)])

    @wrong_types_set_aside
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

    @wrong_types_set_aside
    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        summary, public = await self.summary(agent), await self.summary(agent, Scope.PUBLIC)
        items: list[dict[str, Any]] = [{"kind": "summary", "text": summary}] if summary else []
        if public:
            items.append({"kind": "public_summary", "text": public})
        await self.messages(agent)  # quarantines what does not parse
        for raw in await self._redis.lrange(self._keys.queue(agent), 0, -1):
            try:
                items.append({"kind": "queued_message", **json.loads(raw)})
            except _UNREADABLE:  # written since the sweep just above: the next read moves it aside
                continue
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
