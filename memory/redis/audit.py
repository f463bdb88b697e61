"""The audit trail on Redis: one stream per agent (``<prefix>:audit:{<agent>}``), one entry per memory write.

Entry fields (all strings): ``at`` (RFC 3339 UTC), ``kind``, ``cause``, and when they apply ``version`` (the core
version the write produced), ``label`` (the core block) and ``detail`` (JSON: ids, counts, scope, source; never
memory text). Core writes add their entry inside the same Lua script as the write (``memory.redis.core``), with these
same fields; every other write adds it through :class:`RedisAuditLog`.

The stream is capped at about ``max_entries`` (``XADD MAXLEN ~``: Redis trims whole nodes, so a few more may be
kept). Trimming drops the oldest entries only; core text is in the core versions, kept and capped separately.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from bot.core.events import AgentKey
from bot.core.memory_types import AuditEntry
from memory.redis.client import AsyncRedis
from memory.redis.keys import RedisKeys

DEFAULT_AUDIT_MAX_ENTRIES = 5000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stamp(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``: the ``at`` field of entries and core versions."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(entry: AuditEntry) -> dict[Any, Any]:
    """The stream fields of ``entry``."""
    fields: dict[Any, Any] = {"at": stamp(entry.at), "kind": entry.kind, "cause": entry.cause}
    if entry.version is not None:
        fields["version"] = str(entry.version)
    if entry.label:
        fields["label"] = entry.label
    if entry.detail:
        fields["detail"] = json.dumps(dict(entry.detail), ensure_ascii=False, sort_keys=True)
    return fields


def decode(entry_id: bytes | str, raw: Mapping[Any, Any]) -> AuditEntry:
    """An entry read back from the stream."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    detail = json.loads(fields["detail"]) if fields.get("detail") else {}
    return AuditEntry(
        kind=fields.get("kind", "unknown"),
        cause=fields.get("cause", ""),
        at=datetime.fromisoformat(fields["at"]) if fields.get("at") else datetime.fromtimestamp(0, UTC),
        version=int(fields["version"]) if fields.get("version") else None,
        label=fields.get("label") or None,
        detail=detail if isinstance(detail, dict) else {"value": detail},
        id=_text(entry_id),
    )


def as_json(entry: AuditEntry) -> dict[str, Any]:
    """A JSON-ready dict of ``entry`` (for export and ``--json``)."""
    item: dict[str, Any] = {"id": entry.id, "at": stamp(entry.at), "kind": entry.kind, "cause": entry.cause}
    if entry.version is not None:
        item["version"] = entry.version
    if entry.label:
        item["label"] = entry.label
    if entry.detail:
        item["detail"] = dict(entry.detail)
    return item


def _entries(raw: Any) -> list[tuple[bytes | str, Mapping[Any, Any]]]:
    """XRANGE/XREVRANGE replies as (id, fields) pairs."""
    return [(entry_id, fields) for entry_id, fields in cast(list[Any], raw or []) if entry_id and fields is not None]


class RedisAuditLog:
    """``AuditLog`` on a Redis stream per agent."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys, max_entries: int = DEFAULT_AUDIT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._redis = redis
        self._keys = keys
        self.max_entries = max_entries

    async def record(self, agent: AgentKey, entry: AuditEntry) -> str:
        entry_id = await self._redis.xadd(
            self._keys.audit(agent), encode(entry), maxlen=self.max_entries, approximate=True
        )
        return _text(entry_id)

    async def history(self, agent: AgentKey, limit: int, before: str | None = None) -> list[AuditEntry]:
        """Up to ``limit`` entries, newest first; ``before`` (an entry id) pages back past that entry."""
        newest = f"({before}" if before else "+"
        raw = await self._redis.xrevrange(self._keys.audit(agent), max=newest, min="-", count=max(1, limit))
        return [decode(entry_id, fields) for entry_id, fields in _entries(raw)]

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every entry, oldest first, as JSON-ready dicts."""
        raw = await self._redis.xrange(self._keys.audit(agent))
        return [as_json(decode(entry_id, fields)) for entry_id, fields in _entries(raw)]

    async def erase(self, agent: AgentKey, final: AuditEntry) -> int:
        """Remove every entry, then record ``final`` (the erase itself), in one transaction; return how many went."""
        key = self._keys.audit(agent)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xlen(key)
            pipe.delete(key)
            pipe.xadd(key, encode(final), maxlen=self.max_entries, approximate=True)
            removed, _, _ = await pipe.execute()
        return int(removed)
