"""Core memory blocks and the working queue on Redis.

Core blocks live in one hash per agent (label -> text). Limits come from configuration (``block_limit``, or a
per-label override) unless an agent has its own limit stored with ``set_limit``. Every edit is one Lua script:
read, check, write, so concurrent edits never lose each other's changes and a block never exceeds its limit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from bot.events import AgentKey
from bot.memory_types import CORE_LABELS, Block, MemoryEditError
from memory.keys import RedisKeys

DEFAULT_BLOCK_LIMIT = 2000
log = logging.getLogger(__name__)

# KEYS: blocks hash, limits hash, meta hash.
# ARGV: op ("append" | "replace"), label, content-or-old, new, default limit, now (RFC 3339).
# Returns {"ok", new value, limit} | {"missing", labels...} | {"notfound"} | {"toolong", chars, limit}.
_EDIT_SCRIPT = r"""
local current = redis.call('HGET', KEYS[1], ARGV[2])
if not current then
  local labels = redis.call('HKEYS', KEYS[1])
  table.insert(labels, 1, 'missing')
  return labels
end
local limit = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or ARGV[5])
local new
if ARGV[1] == 'append' then
  if current == '' then new = ARGV[3] else new = current .. '\n' .. ARGV[3] end
else
  local parts, pos, found = {}, 1, 0
  while true do
    local i, j = string.find(current, ARGV[3], pos, true)
    if not i then break end
    parts[#parts + 1] = string.sub(current, pos, i - 1)
    parts[#parts + 1] = ARGV[4]
    pos = j + 1
    found = found + 1
  end
  if found == 0 then return {'notfound'} end
  parts[#parts + 1] = string.sub(current, pos)
  new = table.concat(parts)
end
-- characters, not bytes: count every byte that does not continue a UTF-8 sequence
local chars = select(2, string.gsub(new, '[^\128-\191]', ''))
if chars > limit then return {'toolong', tostring(chars), tostring(limit)} end
redis.call('HSET', KEYS[1], ARGV[2], new)
redis.call('HSET', KEYS[3], 'modified', ARGV[6])
return {'ok', new, tostring(limit)}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _label_order(label: str) -> tuple[int, str]:
    return (CORE_LABELS.index(label) if label in CORE_LABELS else len(CORE_LABELS), label)


class RedisCoreMemory:
    """``CoreMemory`` on Redis: atomic, limit-checked edits of each agent's blocks."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        block_limit: int = DEFAULT_BLOCK_LIMIT,
        limits: Mapping[str, int] | None = None,
    ) -> None:
        if block_limit < 1:
            raise ValueError("block_limit must be at least 1 character")
        self._redis = redis
        self._keys = keys
        self._block_limit = block_limit
        self._limits = dict(limits or {})
        self._edit = redis.register_script(_EDIT_SCRIPT)

    def default_limit(self, label: str) -> int:
        return self._limits.get(label, self._block_limit)

    async def ensure(self, agent: AgentKey, defaults: dict[str, str]) -> None:
        """Create missing blocks with the given initial values (HSETNX); existing blocks are left alone.

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
        now = _now()
        async with self._redis.pipeline(transaction=True) as pipe:
            for label, value in defaults.items():
                pipe.hsetnx(self._keys.core_blocks(agent), label, value)
            pipe.hsetnx(self._keys.meta(agent), "created", now)
            pipe.hsetnx(self._keys.meta(agent), "modified", now)
            pipe.sadd(self._keys.agents(), str(agent))
            await pipe.execute()

    async def blocks(self, agent: AgentKey) -> list[Block]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.core_blocks(agent))
            pipe.hgetall(self._keys.core_limits(agent))
            raw_blocks, raw_limits = await pipe.execute()
        limits = {_text(k): int(v) for k, v in raw_limits.items()}
        values = {_text(k): _text(v) for k, v in raw_blocks.items()}
        return [
            Block(label, values[label], limits.get(label, self.default_limit(label)))
            for label in sorted(values, key=_label_order)
        ]

    async def append(self, agent: AgentKey, label: str, content: str) -> Block:
        """Append ``content`` on a new line; raise MemoryEditError with advice for the model."""
        if not content.strip():
            raise MemoryEditError(
                "core_memory_append failed: content is empty. Pass the text to add to the block and try again."
            )
        return await self._run("core_memory_append", agent, label, "append", content, "")

    async def replace(self, agent: AgentKey, label: str, old: str, new: str) -> Block:
        """Replace every occurrence of ``old`` with ``new`` (an empty ``new`` deletes the text)."""
        if not old:
            raise MemoryEditError(
                f"core_memory_replace failed: old text is empty. Copy the exact text to change from block "
                f"'{label}' and try again."
            )
        return await self._run("core_memory_replace", agent, label, "replace", old, new)

    async def _run(self, function: str, agent: AgentKey, label: str, op: str, first: str, second: str) -> Block:
        keys = [self._keys.core_blocks(agent), self._keys.core_limits(agent), self._keys.meta(agent)]
        args: list[str | int] = [op, label, first, second, self.default_limit(label), _now()]
        reply = [_text(part) for part in await self._edit(keys=keys, args=args)]
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

    async def set_limit(self, agent: AgentKey, label: str, limit: int) -> None:
        """Give one agent's block its own limit (for admins); refuses a limit below the block's current size."""
        block = next((b for b in await self.blocks(agent) if b.label == label), None)
        if block is None:
            raise KeyError(f"agent {agent} has no core block {label!r}")
        if limit < block.chars:
            raise ValueError(f"block {label!r} already holds {block.chars} characters; shorten it first")
        await self._redis.hset(self._keys.core_limits(agent), label, str(limit))

    async def last_modified(self, agent: AgentKey) -> datetime | None:
        raw = await self._redis.hget(self._keys.meta(agent), "modified")
        return None if raw is None else datetime.fromisoformat(_text(raw))

    async def exists(self, agent: AgentKey) -> bool:
        return bool(await self._redis.exists(self._keys.core_blocks(agent)))

    async def agents(self) -> list[AgentKey]:
        """Every agent that has core memory (for admin commands and the scheduler)."""
        members = await self._redis.smembers(self._keys.agents())
        return sorted(AgentKey.parse(_text(m)) for m in members)

    async def export(self, agent: AgentKey) -> list[dict[str, Any]]:
        meta = await self._redis.hgetall(self._keys.meta(agent))
        items: list[dict[str, Any]] = [
            {"kind": "core_block", "label": b.label, "value": b.value, "limit": b.limit}
            for b in await self.blocks(agent)
        ]
        if meta:
            items.append({"kind": "core_meta", **{_text(k): _text(v) for k, v in meta.items()}})
        return items

    async def erase(self, agent: AgentKey) -> int:
        """Remove the agent's blocks, limits and metadata; return how many blocks were removed."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hlen(self._keys.core_blocks(agent))
            pipe.delete(self._keys.core_blocks(agent), self._keys.core_limits(agent), self._keys.meta(agent))
            pipe.srem(self._keys.agents(), str(agent))
            removed, *_ = await pipe.execute()
        return int(removed)
