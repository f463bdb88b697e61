"""Stored items that do not parse, moved aside so everything else keeps working.

A queue entry, summary, core value, core version or scheduler job that cannot be read (not UTF-8, not JSON, not
the shape we write) would otherwise break every turn, ``memory show`` and ``memory export`` of its agent. The
store that finds it moves it, in one script, from where it was to the agent's quarantine list
(``RedisKeys.quarantine``) and records a ``quarantine`` entry in the audit trail (store, reason; never the text).
The move happens only if the item is still there unchanged, so two readers never quarantine it twice.

A key of the wrong Redis type (a list where a string belongs: Redis answers WRONGTYPE) is set aside whole the same
way (``set_aside_wrong_types``, its contents as JSON text): the stores whose methods carry ``@wrong_types_set_aside``
move the agent's mistyped keys when a command meets WRONGTYPE, then run the command once more.

``memory show`` counts the quarantined items, ``memory export`` includes them (the raw value, as text or base64),
and reset and erase remove them with the rest of the agent's memory.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, cast

from redis.exceptions import ResponseError

from bot.core.events import AgentKey
from memory.redis.audit import DEFAULT_AUDIT_MAX_ENTRIES, stamp
from memory.redis.client import AsyncRedis, SyncRedis
from memory.redis.keys import RedisKeys

log = logging.getLogger(__name__)

Where = Literal["list", "hash", "string"]
QUARANTINE_CAUSE = "read"  # the cause of a quarantine: a read found the item unreadable

# KEYS: source key, quarantine list, audit stream, [queue generation]. ARGV: where (list | hash | string), raw value,
# hash field, record JSON, now, cause, audit max entries, detail JSON, [new generation].
# Moves the item only while it is still stored unchanged; returns 1 when moved, 0 when it was gone or changed.
_MOVE = """
local where, raw = ARGV[1], ARGV[2]
local moved = 0
if where == 'list' then
  moved = redis.call('LREM', KEYS[1], 1, raw)
elseif where == 'hash' then
  if redis.call('HGET', KEYS[1], ARGV[3]) == raw then moved = redis.call('HDEL', KEYS[1], ARGV[3]) end
elseif redis.call('GET', KEYS[1]) == raw then
  moved = redis.call('DEL', KEYS[1])
end
if moved == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'at', ARGV[5], 'kind', 'quarantine', 'cause', ARGV[6],
  'detail', ARGV[8])
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[9]) end
return 1
"""

# KEYS: the key, quarantine list, audit stream. ARGV: expected type, DUMP of the key as read, record JSON, now, cause,
# audit max entries, detail JSON. Moves the key only while it has a wrong type and is unchanged (its DUMP).
_MOVE_KEY = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' or kind == ARGV[1] then return 0 end
if redis.call('DUMP', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'at', ARGV[4], 'kind', 'quarantine', 'cause', ARGV[5],
  'detail', ARGV[7])
return 1
"""


def raw_fields(raw: bytes | str) -> dict[str, str]:
    """The raw value as JSON can carry it: text when it is UTF-8, else base64."""
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        return {"raw": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw_base64": base64.b64encode(data).decode("ascii")}


def reason_of(exc: BaseException) -> str:
    """A short reason for the audit trail: the error's type and message, never the stored text."""
    message = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        message = f"invalid UTF-8 at byte {exc.start}"
    return f"{type(exc).__name__}: {message}"[:200]


class RedisQuarantine:
    """The per-agent quarantine list: move an unreadable item into it, count, export and erase it."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys, audit_max_entries: int = DEFAULT_AUDIT_MAX_ENTRIES) -> None:
        self._redis = redis
        self._keys = keys
        self._audit_max = audit_max_entries
        self._move = redis.register_script(_MOVE)
        self._move_key = redis.register_script(_MOVE_KEY)

    async def move(
        self,
        agent: AgentKey,
        *,
        store: str,
        key: str,
        where: Where,
        raw: bytes | str,
        reason: str,
        field: bytes | str = "",
        generation: tuple[str, str] | None = None,
    ) -> bool:
        """Move ``raw`` from ``key`` (a list item, a hash ``field``, or a string) to the quarantine; also set
        ``generation`` (key, new value) in the same step. False when it was no longer there."""
        now = stamp(datetime.now(UTC))
        record = {"store": store, "key": key, "reason": reason, "at": now, **raw_fields(raw)}
        name = field.decode("utf-8", "replace") if isinstance(field, bytes) else field
        if name:
            record["field"] = name
        detail = json.dumps(
            {"store": store, "field": name, "reason": reason} if name else {"store": store, "reason": reason}
        )
        keys = [key, self._keys.quarantine(agent), self._keys.audit(agent)]
        args: list[str | bytes | int] = [where, raw, field, json.dumps(record, ensure_ascii=False), now]
        args += [QUARANTINE_CAUSE, self._audit_max, detail]
        if generation is not None:
            keys.append(generation[0])
            args.append(generation[1])
        return bool(await self._move(keys=keys, args=args))

    async def set_aside_wrong_types(self, agent: AgentKey, expected: Mapping[str, tuple[str, str]]) -> int:
        """Move each of ``expected``'s keys (key -> (store, Redis type)) that holds another type to the quarantine;
        return how many were moved."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in expected:
                pipe.type(key)
            kinds = [_text(kind) for kind in await pipe.execute()]
        moved = 0
        for (key, (store, wanted)), kind in zip(expected.items(), kinds, strict=True):
            if kind in ("none", wanted):
                continue
            dump = await self._redis.dump(key)
            if dump is None:
                continue
            reason = f"WRONGTYPE: a {kind} where a {wanted} belongs"
            now = stamp(datetime.now(UTC))
            contents = json.dumps(_jsonable(await self._contents(key, kind)), ensure_ascii=False)
            record = {"store": store, "key": key, "reason": reason, "at": now, "type": kind, "raw": contents}
            detail = json.dumps({"store": store, "reason": reason})
            args: list[str | bytes | int] = [wanted, dump, json.dumps(record, ensure_ascii=False), now]
            args += [QUARANTINE_CAUSE, self._audit_max, detail]
            keys = [key, self._keys.quarantine(agent), self._keys.audit(agent)]
            if await self._move_key(keys=keys, args=args):
                log.warning("a key of the wrong type was quarantined", extra={"agent": str(agent), "store": store})
                moved += 1
        return moved

    async def _contents(self, key: str, kind: str) -> Any:
        """What a key of type ``kind`` holds, read by the command for that type."""
        if kind == "string":
            return await self._redis.get(key)
        if kind == "list":
            return await self._redis.lrange(key, 0, -1)
        if kind == "hash":
            return await self._redis.hgetall(key)
        if kind == "set":
            return sorted(await self._redis.smembers(key))
        if kind == "zset":
            return await self._redis.zrange(key, 0, -1, withscores=True)
        if kind == "stream":
            return await self._redis.xrange(key)
        return None

    async def count(self, agent: AgentKey) -> int:
        return int(await self._redis.llen(self._keys.quarantine(agent)))

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every quarantined item, oldest first, as JSON-ready dicts."""
        items: list[dict[str, Any]] = []
        for raw in await self._redis.lrange(self._keys.quarantine(agent), 0, -1):
            try:
                record = json.loads(raw)
            except ValueError:  # the quarantine itself was tampered with: show what is there
                record = {"store": "quarantine", **raw_fields(raw)}
            items.append({"kind": "quarantined", **record} if isinstance(record, dict) else {"kind": "quarantined"})
        return items

    async def erase(self, agent: AgentKey) -> int:
        """Remove every quarantined item; return how many."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.llen(self._keys.quarantine(agent))
            pipe.delete(self._keys.quarantine(agent))
            removed, _ = await pipe.execute()
        return int(removed)


def set_aside_job(
    client: SyncRedis, job_id: str, raw: bytes, reason: str, *, keys: RedisKeys, audit_max_entries: int
) -> bool:
    """Copy an unreadable heartbeat job (``<kind>:<agent key>``) to its agent's quarantine, audited; the job store
    removes it afterwards (it is in another cluster slot). False when the id names no agent."""
    try:
        agent = AgentKey.parse(job_id.partition(":")[2])
    except ValueError:
        return False
    now = stamp(datetime.now(UTC))
    record = {"store": "scheduler_job", "key": keys.scheduler_jobs(), "field": job_id, "reason": reason, "at": now}
    record.update(raw_fields(raw))
    detail = json.dumps({"store": "scheduler_job", "reason": reason, "field": job_id})
    with client.pipeline(transaction=True) as pipe:  # both keys are the agent's: one slot
        pipe.rpush(keys.quarantine(agent), json.dumps(record, ensure_ascii=False))
        audit = {"at": now, "kind": "quarantine", "cause": QUARANTINE_CAUSE, "detail": detail}
        pipe.xadd(keys.audit(agent), audit, maxlen=audit_max_entries, approximate=True)  # type: ignore[arg-type]
        pipe.execute()
    return True


class TypedKeys(Protocol):
    """A store whose keys have known Redis types (for ``wrong_types_set_aside``)."""

    @property
    def quarantine(self) -> RedisQuarantine: ...

    def typed_keys(self, agent: AgentKey) -> dict[str, tuple[str, str]]:
        """The agent's keys of this store: key -> (store name, Redis type)."""
        ...


F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])


def wrong_types_set_aside(method: F) -> F:
    """Run a store method (on a ``TypedKeys`` store, the agent its first argument); when Redis answers WRONGTYPE,
    quarantine the agent's mistyped keys and run it once more."""

    @functools.wraps(method)
    async def run(store: TypedKeys, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(store, *args, **kwargs)
        except ResponseError as exc:
            agent = args[0] if args else kwargs["agent"]
            if "WRONGTYPE" not in str(exc) or not await store.quarantine.set_aside_wrong_types(
                agent, store.typed_keys(agent)
            ):
                raise
        return await method(store, *args, **kwargs)

    return cast(F, run)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _jsonable(value: Any) -> Any:
    """Redis replies as JSON: bytes as text (undecodable bytes replaced), tuples and dicts walked."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value
