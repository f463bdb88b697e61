"""One recall/archival store per Redis namespace: which Qdrant store a Redis prefix's memory lives in.

Redis holds each person's core memory, queue and the recall outbox; Qdrant holds their recall and archival memory.
Two embedded stores (two data directories) on one Redis namespace would each drain the shared outbox and split a
person's memory between them, so the namespace records its store in one hash (``RedisKeys.store_registration``):

- ``kind=embedded``: a random ``id`` written into the store's directory (``membot-store-id``), its absolute
  ``path`` and ``host``. Opening an embedded store whose id is not the registered one is refused
  (``StoreConflict``, naming both paths and the fixes); the same store reopened (same id: the same directory,
  or the directory moved) is fine and updates the recorded path. When the registered directory is on this host
  and no longer holds that store (deleted), the newcomer takes the namespace over.
- ``kind=server``: a Qdrant server (``QDRANT_URL``) is shared by every process, so it is never refused; it only
  records itself, so that an embedded store opened later on the same namespace (say, ``membot memory show`` run
  without ``QDRANT_URL``) is refused instead of draining the outbox into an empty directory.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memory.redis.client import AsyncRedis
from memory.redis.keys import RedisKeys

log = logging.getLogger(__name__)

STORE_ID_FILE = "membot-store-id"
EMBEDDED, SERVER = "embedded", "server"
SERVER_ID = "qdrant-server"

# KEYS: the registration hash. ARGV: id, kind, path, host, now, mode ("claim" | "replace:<id>" | "server").
# claim: register when none, refresh when the same id, else return the registration (a conflict).
# replace:<old>: take over a registration still held by <old>. server: always (re)register.
_CLAIM = """
local current = redis.call('HGET', KEYS[1], 'id')
local mode = ARGV[6]
local take = (not current) or current == ARGV[1] or mode == 'server'
  or (string.sub(mode, 1, 8) == 'replace:' and current == string.sub(mode, 9))
if not take then
  return {0, redis.call('HGETALL', KEYS[1])}
end
local previous = redis.call('HGETALL', KEYS[1])
if current ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'since', ARGV[5])
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'kind', ARGV[2], 'path', ARGV[3], 'host', ARGV[4], 'opened', ARGV[5])
return {1, previous}
"""


class StoreConflict(RuntimeError):
    """This Redis namespace's memory lives in another store; the message names both and says what to set."""


@dataclass(frozen=True)
class StoreRecord:
    """A registered store: ``kind`` embedded (``path`` a directory on ``host``) or server (``path`` its URL)."""

    kind: str
    id: str
    path: str
    host: str
    since: str = ""

    @classmethod
    def from_hash(cls, fields: dict[Any, Any]) -> StoreRecord | None:
        values = {_text(k): _text(v) for k, v in fields.items()}
        if "id" not in values:
            return None
        return cls(
            values.get("kind", EMBEDDED),
            values["id"],
            values.get("path", "?"),
            values.get("host", "?"),
            values.get("since", ""),
        )

    def describe(self) -> str:
        if self.kind == SERVER:
            return f"the Qdrant server at {self.path}"
        return f"the embedded store in {self.path} (host {self.host})"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_store_id(directory: Path) -> str | None:
    """The id written in an embedded store's directory, or None when it has none (yet)."""
    try:
        text = (directory / STORE_ID_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None


def ensure_store_id(directory: Path) -> str:
    """The store's id, written (atomically) into ``directory`` the first time."""
    existing = read_store_id(directory)
    if existing:
        return existing
    new = uuid.uuid4().hex
    partial = directory / f".{STORE_ID_FILE}.{os.getpid()}"
    partial.write_text(new + "\n", encoding="utf-8")
    os.replace(partial, directory / STORE_ID_FILE)
    return new


def absolute(directory: Path) -> str:
    return str(directory.resolve())


class StoreRegistry:
    """Claims a Redis namespace for one store (see the module docstring)."""

    def __init__(self, redis: AsyncRedis, keys: RedisKeys, *, redis_description: str) -> None:
        self._redis = redis
        self._key = keys.store_registration()
        self._prefix = keys.prefix
        self._where = redis_description
        self._claim = redis.register_script(_CLAIM)
        self._host = socket.gethostname()

    async def registered(self) -> StoreRecord | None:
        return StoreRecord.from_hash(await self._redis.hgetall(self._key))

    async def check_embedded(self, directory: Path) -> None:
        """Before opening: refuse a directory that clearly is not the registered store (creates nothing)."""
        record = await self.registered()
        if record is not None and not self._may_take(record, read_store_id(directory)):
            raise StoreConflict(self._conflict(record, directory))

    async def claim_embedded(self, directory: Path) -> StoreRecord:
        """After opening (the directory's lock is held): register the store, or raise StoreConflict."""
        store_id, path = ensure_store_id(directory), absolute(directory)
        accepted, previous = await self._run(store_id, EMBEDDED, path, "claim")
        if not accepted and previous is not None and self._may_take(previous, store_id):
            log.warning("the registered embedded store is gone; this one takes over", extra={"gone": previous.path})
            accepted, previous = await self._run(store_id, EMBEDDED, path, f"replace:{previous.id}")
        if not accepted:
            assert previous is not None
            raise StoreConflict(self._conflict(previous, directory))
        return StoreRecord(EMBEDDED, store_id, path, self._host)

    async def claim_server(self, url: str) -> StoreRecord | None:
        """Record that the namespace's memory is on the server at ``url``; returns an embedded store it replaced."""
        _, previous = await self._run(SERVER_ID, SERVER, url, "server")
        if previous is not None and previous.kind == EMBEDDED:
            log.warning(
                "memory now lives on the Qdrant server; the embedded store it replaces is no longer used",
                extra={"previous": previous.path},
            )
            return previous
        return None

    async def _run(self, store_id: str, kind: str, path: str, mode: str) -> tuple[bool, StoreRecord | None]:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        reply: Any = await self._claim(keys=[self._key], args=[store_id, kind, path, self._host, now, mode])
        flat = [_text(v) for v in reply[1]]
        return bool(int(reply[0])), StoreRecord.from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))

    def _may_take(self, record: StoreRecord, store_id: str | None) -> bool:
        """Whether a store with ``store_id`` may use the namespace ``record`` holds: the same store, or the
        registered directory is on this host and no longer holds that store (it was deleted)."""
        if store_id is not None and store_id == record.id:
            return True
        if record.kind != EMBEDDED or record.host != self._host:
            return False
        return read_store_id(Path(record.path)) != record.id

    def _conflict(self, record: StoreRecord, directory: Path) -> str:
        here = directory.resolve()
        namespace = f"Redis namespace {self._prefix!r} at {self._where}"
        if record.kind == SERVER:
            return (
                f"The memory of {namespace} is kept on {record.describe()}, but this membot would use an embedded "
                f"store in {here}. Set QDRANT_URL={record.path} (as the other membot processes do)."
            )
        data_dir = Path(record.path).parent
        return (
            f"The memory of {namespace} is kept in {record.describe()}, registered {record.since or 'earlier'}; "
            f"this membot would use another embedded store in {here}. Two stores on one Redis would split "
            f"everyone's memory between them. Use the same store (set MEMBOT_DATA_DIR={data_dir}, on that host), "
            "share a Qdrant server (set QDRANT_URL on every membot), or keep a separate memory (set "
            f"MEMBOT_REDIS_PREFIX to another name). If {record.path} is gone for good, delete the Redis key "
            f"{self._key} and start again."
        )
