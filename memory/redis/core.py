"""Core memory blocks on Redis: the edits a turn and the admin commands make (versions in ``core_versions.py``).

Core blocks live in one hash per agent (label -> text). Limits come from configuration (``block_limit``, or a
per-label override) unless an agent has its own limit stored with ``set_limit``. Every write is one Lua script
(``memory.redis.core_scripts``): read, check, write, store the whole core memory as a new numbered version, and add the
audit entry, so concurrent edits never lose each other's changes, a block never exceeds its limit, and no core
change goes unversioned or unaudited.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.core.events import AgentKey
from bot.core.memory_types import (
    CORE_LABELS,
    PRIVATE_MARK,
    AuditKind,
    Block,
    Fence,
    MemoryEditError,
    fence_token,
    marked,
    unmarked,
)
from memory.redis.audit import stamp
from memory.redis.core_versions import (
    RedisCoreVersions,
    decoded,
)
from memory.redis.fencing import refused_as_lock_lost
from memory.redis.quarantine import wrong_types_set_aside

log = logging.getLogger(__name__)


def _lenient(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _label_order(label: str) -> tuple[int, str]:
    return (CORE_LABELS.index(label) if label in CORE_LABELS else len(CORE_LABELS), label)


class RedisCoreMemory(RedisCoreVersions):
    """``CoreMemory`` on Redis: atomic, limit-checked, versioned and audited edits of each agent's blocks (versions,
    rollback, reset and scrub in ``RedisCoreVersions``)."""

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
                values[decoded(k)] = decoded(v)
            except UnicodeDecodeError as exc:
                await self._set_aside(agent, "core_block", self._keys.core_blocks(agent), "hash", v, exc, k)
        limits: dict[str, int] = {}
        for k, v in raw_limits.items():
            try:
                limits[decoded(k)] = int(v)
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
        reply = [decoded(part) for part in raw]
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

    # --- the rest ------------------------------------------------------------------------------------------
    @wrong_types_set_aside
    async def last_modified(self, agent: AgentKey) -> datetime | None:
        raw = await self._redis.hget(self._keys.meta(agent), "modified")
        if raw is None:
            return None
        try:
            return datetime.fromisoformat(decoded(raw))
        except ValueError as exc:
            await self._set_aside(agent, "core_meta", self._keys.meta(agent), "hash", raw, exc, "modified")
            return None

    async def exists(self, agent: AgentKey) -> bool:
        return bool(await self._redis.exists(self._keys.core_blocks(agent)))

    async def agents(self) -> list[AgentKey]:
        """Every agent that has core memory (for admin commands and the scheduler)."""
        members = await self._redis.smembers(self._keys.agents())
        return sorted(AgentKey.parse(decoded(m)) for m in members)

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
