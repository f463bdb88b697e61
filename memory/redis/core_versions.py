"""The base of core memory on Redis: the store's keys and scripts, and its versions (list, rollback, reset, scrub).

``RedisCoreMemory`` (``memory.redis.core``) adds the edits a turn makes on top of it. Versions: a per-agent counter
counts every core write (it survives a reset, not an erase); version N is the whole core memory after the Nth write,
with its time, kind and cause. The newest ``versions_kept`` are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.core.events import AgentKey
from bot.core.memory_types import PRIVATE_MARK, AuditKind, CoreVersion, VersionNotKept, unmarked
from memory.redis import core_scripts
from memory.redis.audit import DEFAULT_AUDIT_MAX_ENTRIES, stamp
from memory.redis.client import AsyncRedis
from memory.redis.keys import RedisKeys
from memory.redis.quarantine import RedisQuarantine, Where, reason_of, wrong_types_set_aside

DEFAULT_BLOCK_LIMIT = 2000
DEFAULT_VERSIONS_KEPT = 200
log = logging.getLogger(__name__)


def decoded(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def _version_of(number: int, raw: bytes | str) -> CoreVersion:
    state = json.loads(decoded(raw))
    blocks = state.get("blocks") or {}
    return CoreVersion(
        version=number,
        at=datetime.fromisoformat(state["at"]),
        kind=str(state.get("kind", "")),
        cause=str(state.get("cause", "")),
        blocks={str(k): str(v) for k, v in blocks.items()} if isinstance(blocks, dict) else {},
        label=state.get("label"),
    )


class RedisCoreVersions:
    """Core memory on Redis as its versions see it: the keys, the scripts, listing, rollback, reset and scrub."""

    def __init__(
        self,
        redis: AsyncRedis,
        keys: RedisKeys,
        block_limit: int = DEFAULT_BLOCK_LIMIT,
        limits: Mapping[str, int] | None = None,
        *,
        versions_kept: int = DEFAULT_VERSIONS_KEPT,
        audit_max_entries: int = DEFAULT_AUDIT_MAX_ENTRIES,
        quarantine: RedisQuarantine | None = None,
    ) -> None:
        if block_limit < 1:
            raise ValueError("block_limit must be at least 1 character")
        if versions_kept < 1:
            raise ValueError("versions_kept must be at least 1")
        self._redis = redis
        self._keys = keys
        self._block_limit = block_limit
        self._limits = dict(limits or {})
        self.versions_kept = versions_kept
        self._audit_max = audit_max_entries
        self._quarantine = quarantine or RedisQuarantine(redis, keys, audit_max_entries)
        self._edit = redis.register_script(core_scripts.EDIT)
        self._ensure = redis.register_script(core_scripts.ENSURE)
        self._rollback = redis.register_script(core_scripts.ROLLBACK)
        self._reset = redis.register_script(core_scripts.RESET)
        self._scrub = redis.register_script(core_scripts.SCRUB)

    @property
    def quarantine(self) -> RedisQuarantine:
        return self._quarantine

    def typed_keys(self, agent: AgentKey) -> dict[str, tuple[str, str]]:
        """The agent's core-memory keys and their Redis types (a mistyped one is quarantined)."""
        k = self._keys
        return {
            k.core_blocks(agent): ("core_block", "hash"),
            k.core_limits(agent): ("core_limit", "hash"),
            k.meta(agent): ("core_meta", "hash"),
            k.core_versions(agent): ("core_version", "hash"),
            k.core_version(agent): ("core_version_counter", "string"),
        }

    def default_limit(self, label: str) -> int:
        return self._limits.get(label, self._block_limit)

    def _script_keys(self, agent: AgentKey) -> list[str]:
        k = self._keys
        return [
            k.core_blocks(agent),
            k.core_limits(agent),
            k.meta(agent),
            k.core_versions(agent),
            k.core_version(agent),
            k.audit(agent),
            k.lock(agent),
        ]

    def _tail(self, kind: AuditKind, cause: str, detail: Mapping[str, Any] | None = None) -> list[str | int]:
        encoded = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True) if detail else ""
        return [stamp(datetime.now(UTC)), kind.value, cause, self.versions_kept, self._audit_max, encoded]

    # --- versions ------------------------------------------------------------------------------------------
    @wrong_types_set_aside
    async def version(self, agent: AgentKey) -> int:
        """The agent's newest core version (0 before any core write)."""
        return int(await self._redis.get(self._keys.core_version(agent)) or 0)

    @wrong_types_set_aside
    async def versions(self, agent: AgentKey, numbers: Sequence[int] | None = None) -> list[CoreVersion]:
        """The kept versions (or those of ``numbers`` that are kept), oldest first."""
        key = self._keys.core_versions(agent)
        if numbers is None:
            raw = {int(decoded(k)): v for k, v in (await self._redis.hgetall(key)).items()}
        else:
            wanted = sorted(set(numbers))
            values = await self._redis.hmget(key, [str(n) for n in wanted]) if wanted else []
            raw = {n: v for n, v in zip(wanted, values, strict=True) if v is not None}
        versions: list[CoreVersion] = []
        for number in sorted(raw):
            try:
                versions.append(_version_of(number, raw[number]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                await self._set_aside(agent, "core_version", key, "hash", raw[number], exc, str(number))
        return versions

    async def _set_aside(
        self,
        agent: AgentKey,
        store: str,
        key: str,
        where: Where,
        raw: bytes | str,
        exc: Exception,
        field: bytes | str,
    ) -> None:
        """Move an unreadable core item to the agent's quarantine (audited) and log it."""
        log.warning("core memory item did not parse; quarantined", extra={"agent": str(agent), "store": store})
        await self._quarantine.move(
            agent, store=store, key=key, where=where, raw=raw, reason=reason_of(exc), field=field
        )

    @wrong_types_set_aside
    async def rollback(self, agent: AgentKey, version: int, *, cause: str) -> int:
        """Restore the blocks of ``version`` as a new version (audited); return the new version number.

        Raises VersionNotKept naming the versions that are kept.
        """
        args: list[str | int] = [str(version), *self._tail(AuditKind.CORE_ROLLBACK, cause, {"to": version})]
        reply = [decoded(part) for part in await self._rollback(keys=self._script_keys(agent), args=args)]
        if reply[0] == "ok":
            await self._redis.sadd(self._keys.agents(), str(agent))
            return int(reply[1])
        oldest, newest = int(reply[1]), int(reply[2])
        if not newest:
            raise VersionNotKept(f"{agent} has no core memory versions")
        raise VersionNotKept(f"version {version} of {agent} is not kept; versions {oldest} to {newest} are")

    @wrong_types_set_aside
    async def reset(self, agent: AgentKey, *, cause: str) -> tuple[int, int]:
        """Remove the blocks, limits and metadata but keep the versions (a rollback can undo a reset): the empty
        core becomes a new version, audited by the caller. Returns (blocks removed, new version)."""
        removed, version = await self._reset(keys=self._script_keys(agent), args=self._tail(AuditKind.RESET, cause))
        await self._redis.srem(self._keys.agents(), str(agent))
        return int(removed), int(version)

    @wrong_types_set_aside
    async def scrub(self, agent: AgentKey, lines: Sequence[tuple[str, str]]) -> int:
        """Remove these (label, line) lines, private mark ignored, from every kept version; return how many
        versions changed. Forgetting a line calls this, so no rollback brings it back."""
        if not lines:
            return 0
        pairs = [part for label, line in lines for part in (label, unmarked(line))]
        return int(await self._scrub(keys=self._script_keys(agent), args=[PRIVATE_MARK, *pairs]))
