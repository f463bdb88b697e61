"""The audit trail as people read it: causes of memory writes, and history items with their core changes.

Every memory write is recorded (``AuditEntry``, kept by an ``AuditLog``) with its cause: ``event:<platform>:<id>``
for a turn, ``heartbeat:<kind>`` for a heartbeat, ``user:…``/``admin:…`` for commands (``bot.admin.authz.Actor``),
``cli`` for the ``membot`` command. Core entries name the version they produced; their before/after is read from
the kept core versions, so the history shows what changed without the trail holding a second copy of memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from bot.core.events import Scope
from bot.core.memory_types import AuditEntry, AuditKind, CoreVersion
from bot.core.privacy import visible_lines

CLI_CAUSE = "cli"
CORE_KINDS = frozenset(
    {
        AuditKind.CORE_INIT,
        AuditKind.CORE_APPEND,
        AuditKind.CORE_REPLACE,
        AuditKind.CORE_MARK,
        AuditKind.CORE_ROLLBACK,
        AuditKind.RESET,
    }
)
MAX_LINE_CHARS = 200


@dataclass(frozen=True)
class CoreChange:
    """The lines one core write removed from and added to one block."""

    label: str
    removed: tuple[str, ...]
    added: tuple[str, ...]


@dataclass(frozen=True)
class HistoryItem:
    """One audit entry with the core change it made (when its versions are still kept)."""

    entry: AuditEntry
    changes: tuple[CoreChange, ...] = ()
    versions_kept: bool = True  # False: a core entry whose versions were pruned (or erased)
    hidden: int = 0  # private lines left out of ``changes`` (in a public view)

    @property
    def headline(self) -> str:
        """One plain line: when, what, caused by what."""
        entry = self.entry
        what = entry.kind + (f" {entry.label}" if entry.label else "")
        version = f"v{entry.version} " if entry.version is not None else ""
        return f"{entry.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC · {version}{what} · {describe(entry)}by {entry.cause}"

    def change_lines(self, limit: int = MAX_LINE_CHARS) -> list[str]:
        """``- removed`` / ``+ added`` lines per block, each at most ``limit`` characters, plus notes."""
        lines: list[str] = []
        for change in self.changes:
            lines.extend(_clip(f"- {change.label}: {line}", limit) for line in change.removed)
            lines.extend(_clip(f"+ {change.label}: {line}", limit) for line in change.added)
        if not self.versions_kept:
            lines.append("(the core text of this change is no longer kept)")
        if self.hidden:
            lines.append(f"({self.hidden} private line(s) not shown here)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        entry = self.entry
        item: dict[str, Any] = {"id": entry.id, "at": entry.at.isoformat(), "kind": entry.kind, "cause": entry.cause}
        item.update({k: v for k, v in (("version", entry.version), ("label", entry.label)) if v is not None})
        if entry.detail:
            item["detail"] = dict(entry.detail)
        if entry.kind in CORE_KINDS:
            item["changes"] = [{"label": c.label, "removed": c.removed, "added": c.added} for c in self.changes]
            item["versions_kept"] = self.versions_kept
            item["hidden_private_lines"] = self.hidden
        return item


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(entry: AuditEntry) -> str:
    """The details of a non-core write in a few words (ids, counts; never memory text), or ""."""
    detail = entry.detail
    kind = entry.kind
    if kind == AuditKind.CORE_ROLLBACK:
        return f"to v{detail.get('to')} "
    if kind == AuditKind.CORE_MARK:
        return "marked private " if detail.get("private") else "marked public "
    if kind == AuditKind.CORE_SCRUB:
        return f"forgotten lines removed from {detail.get('versions', 0)} version(s) "
    if kind == AuditKind.ARCHIVAL_INSERT:
        return f"note {str(detail.get('id', ''))[:8]} ({detail.get('scope')}, {detail.get('source')}) "
    if kind == AuditKind.ARCHIVAL_MERGE:
        dropped = ", ".join(str(i)[:8] for i in detail.get("dropped", []))
        return f"note {str(detail.get('kept', ''))[:8]} took in {dropped} "
    if kind in (AuditKind.ARCHIVAL_DELETE, AuditKind.RECALL_DELETE):
        return f"{len(detail.get('ids', []))} deleted "
    if kind == AuditKind.IMPORT:
        return f"{detail.get('source')}: {detail.get('stored')} of {detail.get('chunks')} passage(s) stored "
    if kind == AuditKind.QUARANTINE:
        return f"unreadable {detail.get('store')} item set aside ({str(detail.get('reason', ''))[:60]}) "
    if kind in (AuditKind.RESET, AuditKind.ERASE, AuditKind.FORGET):
        removed = detail.get("removed") or {}
        counts = ", ".join(f"{count} {store}" for store, count in removed.items()) if removed else "everything"
        return f"removed {counts} "
    return ""


def versions_needed(entries: Iterable[AuditEntry]) -> set[int]:
    """The core versions whose blocks the history of ``entries`` shows (each core entry's own and the one before)."""
    needed: set[int] = set()
    for entry in entries:
        if entry.kind in CORE_KINDS and entry.version is not None:
            needed.update(v for v in (entry.version - 1, entry.version) if v > 0)
    return needed


def history_items(
    entries: Sequence[AuditEntry], versions: Mapping[int, CoreVersion], scope: Scope
) -> list[HistoryItem]:
    """Each entry with its core change, as a context of ``scope`` may show it (private lines left out in public)."""
    items = []
    for entry in entries:
        if entry.kind not in CORE_KINDS or entry.version is None:
            items.append(HistoryItem(entry))
            continue
        after = versions.get(entry.version)
        before = versions.get(entry.version - 1) if entry.version > 1 else None
        if after is None or (before is None and entry.version > 1):
            items.append(HistoryItem(entry, versions_kept=False))
            continue
        changes, hidden = _changes(before.blocks if before else {}, after.blocks, scope)
        items.append(HistoryItem(entry, changes, True, hidden))
    return items


def _changes(before: Mapping[str, str], after: Mapping[str, str], scope: Scope) -> tuple[tuple[CoreChange, ...], int]:
    changes: list[CoreChange] = []
    hidden = 0
    for label in sorted(set(before) | set(after)):
        old = before.get(label, "").splitlines()
        new = after.get(label, "").splitlines()
        removed = [line for line in old if line not in new and line.strip()]
        added = [line for line in new if line not in old and line.strip()]
        shown_removed, shown_added = visible_lines(removed, scope), visible_lines(added, scope)
        hidden += len(removed) + len(added) - len(shown_removed) - len(shown_added)
        if shown_removed or shown_added:
            changes.append(CoreChange(label, tuple(shown_removed), tuple(shown_added)))
    return tuple(changes), hidden
