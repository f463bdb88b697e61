"""The outage journal: messages that arrived while Redis stayed unreachable, kept on local disk until answered.

One file per process under ``<data dir>/journal/``, append-only, one JSON line per record, each write flushed and
fsync'd before the call returns (so an entry survives ``kill -9`` and a power cut):

- ``{"op": "add", "id": ..., "message": {...}}``: a message to answer (``InboundMessage`` as JSON);
- ``{"op": "done", "id": ...}``: its turn stored it (written only after the turn finished).

When every entry is done the file is emptied. The process holds an exclusive lock on its file while it runs; at
start, ``open`` adopts the files of processes that died (their lock is free): their pending entries are copied into
the new file, in order and before anything new, and the old file is removed. A torn last line (a kill during a
write) is skipped: its entry was never acknowledged to anyone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import uuid
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import portalocker

from bot.core.events import AgentKey, Attachment, ChannelMessage, InboundMessage
from bot.core.ports import JournalEntry

__all__ = ["FileJournal", "JournalEntry", "message_from_json", "message_to_json"]

log = logging.getLogger(__name__)


def message_to_json(message: InboundMessage) -> dict[str, Any]:
    return {
        "agent_key": str(message.agent_key),
        "platform": message.platform,
        "workspace_id": message.workspace_id,
        "channel_id": message.channel_id,
        "author_id": message.author_id,
        "author_name": message.author_name,
        "text": message.text,
        "is_dm": message.is_dm,
        "thread_id": message.thread_id,
        "message_id": message.message_id,
        "timestamp": message.timestamp.isoformat(),
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "url": a.url,
                "content": base64.b64encode(a.content).decode() if a.content is not None else None,
                "problem": a.problem,
            }
            for a in message.attachments
        ],
        "recent_context": [
            {"author_name": c.author_name, "text": c.text, "timestamp": c.timestamp.isoformat()}
            for c in message.recent_context
        ],
        "channel_name": message.channel_name,
    }


def message_from_json(data: dict[str, Any]) -> InboundMessage:
    """Raises KeyError/ValueError/TypeError when ``data`` is not a journaled message."""
    return InboundMessage(
        agent_key=AgentKey.parse(data["agent_key"]) if "agent_key" in data else _agent_of_older_entry(data),
        platform=data["platform"],
        workspace_id=data["workspace_id"],
        channel_id=data["channel_id"],
        author_id=data["author_id"],
        author_name=data["author_name"],
        text=data["text"],
        is_dm=bool(data["is_dm"]),
        thread_id=data.get("thread_id"),
        message_id=data.get("message_id"),
        timestamp=datetime.fromisoformat(data["timestamp"]),
        attachments=tuple(
            Attachment(
                filename=a["filename"],
                content_type=a.get("content_type"),
                size=a.get("size"),
                url=a.get("url"),
                content=base64.b64decode(a["content"]) if a.get("content") is not None else None,
                problem=a.get("problem"),
            )
            for a in data.get("attachments", [])
        ),
        recent_context=tuple(
            ChannelMessage(c["author_name"], c["text"], datetime.fromisoformat(c["timestamp"]))
            for c in data.get("recent_context", [])
        ),
        channel_name=data.get("channel_name"),
    )


def _read_pending(path: Path) -> list[JournalEntry]:
    """The entries of a journal file not marked done, in order (torn or unreadable lines are skipped)."""
    entries: dict[str, JournalEntry] = {}
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                record = json.loads(raw)
                if record["op"] == "add":
                    entries[record["id"]] = JournalEntry(record["id"], message_from_json(record["message"]))
                elif record["op"] == "done":
                    entries.pop(record["id"], None)
            except (ValueError, KeyError, TypeError):
                log.warning("skipped an unreadable line %d of the journal %s (a write cut short)", number, path.name)
    return list(entries.values())


class FileJournal:
    """``MessageJournal`` in an fsync'd JSON-lines file per process (see the module docstring)."""

    def __init__(self, directory: Path, file: IO[bytes], path: Path, pending: list[JournalEntry]) -> None:
        self._directory = directory
        self._file = file
        self._path = path
        self._pending: dict[str, JournalEntry] = {entry.id: entry for entry in pending}
        self._write = asyncio.Lock()

    @classmethod
    def open(cls, directory: Path) -> FileJournal:
        """Create this process's journal file, adopting the pending entries of dead processes' files (blocking)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        file = path.open("ab")
        portalocker.lock(file, portalocker.LOCK_EX | portalocker.LOCK_NB)
        adopted: list[JournalEntry] = []
        orphans: list[tuple[Path, IO[bytes]]] = []  # kept locked until removed: no other process adopts them too
        try:
            for other in sorted(directory.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name)):
                if other == path:
                    continue
                try:
                    probe: IO[bytes] = other.open("rb")
                except OSError:
                    continue
                try:
                    portalocker.lock(probe, portalocker.LOCK_EX | portalocker.LOCK_NB)
                except (portalocker.LockException, OSError):
                    probe.close()  # a live process's journal
                    continue
                orphans.append((other, probe))
                adopted.extend(_read_pending(other))
            journal = cls(directory, file, path, [])
            if adopted:
                records = [{"op": "add", "id": e.id, "message": message_to_json(e.message)} for e in adopted]
                journal._append_sync(records)
                journal._pending = {entry.id: entry for entry in adopted}
                log.warning("adopted %d journaled messages left by a stopped process", len(adopted))
            for orphan, _ in orphans:  # only after their entries are safe in our file
                orphan.unlink(missing_ok=True)
        finally:
            for _, locked in orphans:
                locked.close()
        return journal

    @property
    def path(self) -> Path:
        return self._path

    def pending_count(self) -> int:
        return len(self._pending)

    async def append(self, message: InboundMessage) -> str:
        """Write ``message`` durably; returns its entry id."""
        entry = JournalEntry(uuid.uuid4().hex, message)
        async with self._write:
            record = {"op": "add", "id": entry.id, "message": message_to_json(message)}
            await asyncio.to_thread(self._append_sync, [record])
            self._pending[entry.id] = entry
        return entry.id

    async def done(self, entry_id: str) -> None:
        """Mark an entry answered (durably); empties the file once nothing is pending."""
        async with self._write:
            if self._pending.pop(entry_id, None) is None:
                return
            if self._pending:
                await asyncio.to_thread(self._append_sync, [{"op": "done", "id": entry_id}])
            else:
                await asyncio.to_thread(self._truncate_sync)

    async def pending(self) -> list[JournalEntry]:
        """Entries not yet answered, oldest first."""
        return list(self._pending.values())

    def close(self) -> None:
        """Release the file (its pending entries stay for the next process)."""
        empty = not self._pending
        self._file.close()
        if empty:
            self._path.unlink(missing_ok=True)

    def _append_sync(self, records: list[dict[str, Any]]) -> None:
        data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def _truncate_sync(self) -> None:
        self._file.truncate(0)
        self._file.flush()
        os.fsync(self._file.fileno())


def _agent_of_older_entry(data: dict[str, Any]) -> AgentKey:
    """The agent of an entry journaled before entries named it (the adapters' rules of that time), so that a
    journal written by an older membot is still answered after an upgrade."""
    platform, workspace, user = data["platform"], data.get("workspace_id"), data["author_id"]
    if platform == "console":
        return AgentKey(platform, None, user)
    if platform == "slack":
        return AgentKey(platform, workspace or "dm", user)
    return AgentKey(platform, workspace if workspace and not data.get("is_dm") else "dm", user)
