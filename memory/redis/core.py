"""Core memory blocks and the working queue on Redis.

Core blocks live in one hash per agent (label -> text). Limits come from configuration (``block_limit``, or a
per-label override) unless an agent has its own limit stored with ``set_limit``. Every write is one Lua script
(``memory.redis.core_scripts``): read, check, write, store the whole core memory as a new numbered version, and add the
audit entry, so concurrent edits never lose each other's changes, a block never exceeds its limit, and no core
change goes unversioned or unaudited.

Versions: a per-agent counter counts every core write (it survives a reset, not an erase); version N is the whole
core memory after the Nth write, with its time, kind and cause. The newest ``versions_kept`` are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.core.events import AgentKey
from bot.core.memory_types import (
    CORE_LABELS,
    PRIVATE_MARK,
    AuditKind,
    Block,
    CoreVersion,
    Fence,
    MemoryEditError,
    VersionNotKept,
    fence_token,
    marked,
    unmarked,
)
from memory.redis import core_scripts
from memory.redis.audit import DEFAULT_AUDIT_MAX_ENTRIES, stamp
from memory.redis.client import AsyncRedis
from memory.redis.fencing import refused_as_lock_lost
from memory.redis.keys import RedisKeys
from memory.redis.quarantine import RedisQuarantine, Where, reason_of, wrong_types_set_aside

DEFAULT_BLOCK_LIMIT = 2000
DEFAULT_VERSIONS_KEPT = 200
log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _lenient(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _label_order(label: str) -> tuple[int, str]:
    return (CORE_LABELS.index(label) if label in CORE_LABELS else len(CORE_LABELS), label)


def _version_of(number: int, raw: bytes | str) -> CoreVersion:
    state = json.loads(_text(raw))
    blocks = state.get("blocks") or {}
    return CoreVersion(
        version=number,
        at=datetime.fromisoformat(state["at"]),
        kind=str(state.get("kind", "")),
        cause=str(state.get("cause", "")),
        blocks={str(k): str(v) for k, v in blocks.items()} if isinstance(blocks, dict) else {},
        label=state.get("label"),
    )


class RedisCoreMemory:
    """``CoreMemory`` on Redis: atomic, limit-checked, versioned and audited edits of each agent's blocks."""

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

    @wrong_types_set_aside
    async def ensure(
        self, agent: AgentKey, defaults: dict[str, str], *, cause: str, fence: Fence | None = None
    ) -> None:
        """Create missing blocks with the given initial values; existing blocks are left alone. Creating any block
        makes a new version (``core_init``).

        A default longer than its block's limit is stored whole (never truncated) with a warning; edits to that
        block then fail until the model shortens it below the limit.
        """
        for label, value in defaults.items():
            if len(value) > self.default_limit(label):
                log.warning(
                    "default for core block %r is %d characters, over its limit of %d",
                    label,
                    len(value),
                    self.default_limit(label),
                )
        pairs = [part for label, value in defaults.items() for part in (label, value)]
        args: list[str | int] = [len(defaults), *pairs, *self._tail(AuditKind.CORE_INIT, cause)]
        args.append(fence_token(fence, agent))
        with refused_as_lock_lost(fence):
            await self._ensure(keys=self._script_keys(agent), args=args)
        await self._redis.sadd(self._keys.agents(), str(agent))

    @wrong_types_set_aside
    async def blocks(self, agent: AgentKey) -> list[Block]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.core_blocks(agent))
            pipe.hgetall(self._keys.core_limits(agent))
            raw_blocks, raw_limits = await pipe.execute()
        values: dict[str, str] = {}
        for k, v in raw_blocks.items():
            try:
                values[_text(k)] = _text(v)
            except UnicodeDecodeError as exc:
                await self._set_aside(agent, "core_block", self._keys.core_blocks(agent), "hash", v, exc, k)
        limits: dict[str, int] = {}
        for k, v in raw_limits.items():
            try:
                limits[_text(k)] = int(v)
            except ValueError as exc:
                await self._set_aside(agent, "core_limit", self._keys.core_limits(agent), "hash", v, exc, k)
        return [
            Block(label, values[label], limits.get(label, self.default_limit(label)))
            for label in sorted(values, key=_label_order)
        ]

    @wrong_types_set_aside
    async def append(
        self,
        agent: AgentKey,
        label: str,
        content: str,
        *,
        cause: str,
        private: bool = False,
        fence: Fence | None = None,
    ) -> Block:
        """Append ``content`` on a new line (every line marked private when ``private``); raise MemoryEditError
        with advice for the model."""
        if not content.strip():
            raise MemoryEditError(
                "core_memory_append failed: content is empty. Pass the text to add to the block and try again."
            )
        text = marked(content) if private else content
        return await self._run(
            "core_memory_append", agent, label, "append", text, "", AuditKind.CORE_APPEND, cause, fence=fence
        )

    @wrong_types_set_aside
    async def replace(
        self,
        agent: AgentKey,
        label: str,
        old: str,
        new: str,
        *,
        cause: str,
        public_only: bool = False,
        fence: Fence | None = None,
        private: bool = False,
    ) -> Block:
        """Replace every occurrence of ``old`` with ``new`` (an empty ``new`` deletes the text). ``public_only``
        (edits made in a public context) leaves private lines untouched; ``private`` marks every line the edit
        changed private (edits made in a DM)."""
        if not old:
            raise MemoryEditError(
                f"core_memory_replace failed: old text is empty. Copy the exact text to change from block "
                f"'{label}' and try again."
            )
        op = ("replace_public" if public_only else "replace") + ("_mark" if private else "")
        return await self._run(
            "core_memory_replace", agent, label, op, old, new, AuditKind.CORE_REPLACE, cause, fence=fence
        )

    @wrong_types_set_aside
    async def mark(self, agent: AgentKey, label: str, line: str, private: bool, *, cause: str) -> Block:
        """Mark every line equal to ``line`` (mark ignored) private, or remove the mark; MemoryEditError if none."""
        flag = "1" if private else "0"
        detail = {"private": private}
        return await self._run("mark", agent, label, "mark", unmarked(line), flag, AuditKind.CORE_MARK, cause, detail)

    @wrong_types_set_aside
    async def remove_lines(self, agent: AgentKey, label: str, lines: Sequence[str], *, cause: str) -> int:
        """Remove the lines of ``label`` equal to one of ``lines`` (whole lines, mark included; a longer line that
        contains one is kept). Return how many lines were removed (0 when none matched or the block is missing)."""
        wanted = [line for line in lines if line and "\n" not in line]
        if not wanted:
            return 0
        before = next((b for b in await self.blocks(agent) if b.label == label), None)
        if before is None:
            return 0
        try:
            await self._run("forget", agent, label, "drop_lines", "\n".join(wanted), "", AuditKind.CORE_REPLACE, cause)
        except MemoryEditError:
            return 0
        return sum(1 for line in before.value.split("\n") if line in set(wanted))

    async def _run(
        self,
        function: str,
        agent: AgentKey,
        label: str,
        op: str,
        first: str,
        second: str,
        kind: AuditKind,
        cause: str,
        detail: Mapping[str, Any] | None = None,
        *,
        fence: Fence | None = None,
    ) -> Block:
        args: list[str | int] = [op, label, first, second, self.default_limit(label), PRIVATE_MARK]
        args.extend(self._tail(kind, cause, detail))
        args.append(fence_token(fence, agent))
        with refused_as_lock_lost(fence):
            raw = await self._edit(keys=self._script_keys(agent), args=args)
        reply = [_text(part) for part in raw]
        status = reply[0]
        if status == "ok":
            return Block(label, reply[1], int(reply[2]))
        if status == "missing":
            valid = ", ".join(sorted(reply[1:], key=_label_order)) or "none (core memory is not set up)"
            raise MemoryEditError(
                f"{function} failed: there is no core memory block '{label}'. Valid labels: {valid}. "
                "Use one of them and try again."
            )
        if status == "notfound":
            shown = first if len(first) <= 80 else first[:77] + "..."
            raise MemoryEditError(
                f"{function} failed: the text {shown!r} is not in block '{label}'. Copy the exact text from the "
                "block (case, spacing and punctuation must match) and try again."
            )
        raise MemoryEditError(
            f"{function} failed: block '{label}' would be {reply[1]}/{reply[2]} characters. Shorten it with "
            "core_memory_replace, or move details to archival_memory_insert, then try again."
        )

    @wrong_types_set_aside
    async def set_limit(self, agent: AgentKey, label: str, limit: int) -> None:
        """Give one agent's block its own limit (for admins); refuses a limit below the block's current size."""
        block = next((b for b in await self.blocks(agent) if b.label == label), None)
        if block is None:
            raise KeyError(f"agent {agent} has no core block {label!r}")
        if limit < block.chars:
            raise ValueError(f"block {label!r} already holds {block.chars} characters; shorten it first")
        await self._redis.hset(self._keys.core_limits(agent), label, str(limit))

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
            raw = {int(_text(k)): v for k, v in (await self._redis.hgetall(key)).items()}
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
        reply = [_text(part) for part in await self._rollback(keys=self._script_keys(agent), args=args)]
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

    # --- the rest ------------------------------------------------------------------------------------------
    @wrong_types_set_aside
    async def last_modified(self, agent: AgentKey) -> datetime | None:
        raw = await self._redis.hget(self._keys.meta(agent), "modified")
        if raw is None:
            return None
        try:
            return datetime.fromisoformat(_text(raw))
        except ValueError as exc:
            await self._set_aside(agent, "core_meta", self._keys.meta(agent), "hash", raw, exc, "modified")
            return None

    async def exists(self, agent: AgentKey) -> bool:
        return bool(await self._redis.exists(self._keys.core_blocks(agent)))

    async def agents(self) -> list[AgentKey]:
        """Every agent that has core memory (for admin commands and the scheduler)."""
        members = await self._redis.smembers(self._keys.agents())
        return sorted(AgentKey.parse(_text(m)) for m in members)

    @wrong_types_set_aside
    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Blocks, metadata and every kept version."""
        items: list[dict[str, Any]] = [
            {"kind": "core_block", "label": b.label, "value": b.value, "limit": b.limit}
            for b in await self.blocks(agent)
        ]
        meta = await self._redis.hgetall(self._keys.meta(agent))
        if meta:
            fields = {_lenient(k): _lenient(v) for k, v in meta.items()}
            items.append({"kind": "core_meta", **fields})
        items.extend(
            {
                "kind": "core_version",
                "version": v.version,
                "at": stamp(v.at),
                "write": v.kind,
                "cause": v.cause,
                "label": v.label,
                "blocks": dict(v.blocks),
            }
            for v in await self.versions(agent)
        )
        return items

    async def erase(self, agent: AgentKey) -> int:
        """Remove the agent's blocks, limits, metadata, versions and version counter; return blocks removed."""
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:  # the agent's keys: one hash slot
            pipe.hlen(k.core_blocks(agent))
            pipe.delete(
                k.core_blocks(agent),
                k.core_limits(agent),
                k.meta(agent),
                k.core_versions(agent),
                k.core_version(agent),
            )
            removed, *_ = await pipe.execute()
        # The global ``agents`` index is in another cluster slot, so it is updated on its own, after the memory is
        # gone (``ensure`` likewise adds to it after its script). A stop in between leaves only a name in a listing
        # that nothing acts on without reading the agent's own keys; erasing again removes it.
        await self._redis.srem(k.agents(), str(agent))
        return int(removed)
