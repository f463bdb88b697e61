"""Text of membot's slash-command answers (pure functions; Discord Markdown)."""

from __future__ import annotations

from collections.abc import Sequence

from discord.utils import escape_markdown, escape_mentions

from bot.admin.audit import HistoryItem
from bot.admin.memory import ForgetCandidate, MemoryView
from bot.admin.repair import MarkResult, RollbackResult
from bot.core.events import Scope
from bot.core.memory_types import Block, Reminder, SearchHit

SNIPPET_CHARS = 200
MAX_LISTED = 10
MAX_CHANGE_LINES = 6  # per history entry


def _safe(text: str) -> str:
    return escape_mentions(escape_markdown(text))


def _quote(text: str) -> str:
    lines = text.splitlines() or [""]
    return "\n".join(f"> {_safe(line)}" if line.strip() else ">" for line in lines)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def render_memory(view: MemoryView, whose: str) -> str:
    """Core memory blocks and counts of one agent."""
    changed = f"<t:{int(view.last_modified.timestamp())}:R>" if view.last_modified else "never"
    lines = [
        f"**{whose} memory** (`{view.agent}`)",
        f"Conversation history: {view.recall_count} messages · Archival notes: {view.archival_count} · "
        f"In the current window: {view.queue_length} · Core memory changed: {changed}",
    ]
    lines.extend(_blocks(view.blocks))
    if view.scope is Scope.PUBLIC:
        lines.append(
            f"\n*Shown as in public: {view.hidden} private line(s) and the summary of older conversation are left "
            "out (`/memory export` has everything).*"
        )
    if view.summary.strip():
        lines.append("\n**Summary of older conversation**")
        lines.append(_quote(view.summary))
    return "\n".join(lines)


def _blocks(blocks: Sequence[Block]) -> list[str]:
    lines = []
    for block in blocks:
        lines.append(f"\n**{block.label}** ({block.chars}/{block.limit} characters)")
        lines.append(_quote(block.value) if block.value.strip() else "*(empty)*")
    return lines


def render_history(items: Sequence[HistoryItem], whose: str) -> str:
    """Audit entries, newest first, each with the core lines it changed (clipped)."""
    if not items:
        return f"No memory changes are recorded for {whose} memory here."
    lines = [f"**Changes to {whose} memory** (newest first; roll core memory back with a `vN` number)"]
    for item in items:
        lines.append(f"- {_safe(item.headline)}")
        changes = item.change_lines(SNIPPET_CHARS)
        lines.extend(f"  {_safe(line)}" for line in changes[:MAX_CHANGE_LINES])
        if len(changes) > MAX_CHANGE_LINES:
            lines.append(f"  … and {len(changes) - MAX_CHANGE_LINES} more line(s)")
    return "\n".join(lines)


def render_rollback(result: RollbackResult) -> str:
    """Core memory after a rollback, and how to undo it."""
    lines = [
        f"Done: core memory of `{result.agent}` is back to version {result.to} (recorded as version "
        f"{result.version}; roll back to version {result.version - 1} to undo)."
    ]
    lines.extend(_blocks(result.blocks))
    return "\n".join(lines)


def render_marked(result: MarkResult, query: str) -> str:
    """The core lines a private/public mark changed."""
    state = "private" if result.private else "public"
    if not result.lines:
        return f"No {'public' if result.private else 'private'} core memory line here matches “{_safe(query)}”."
    lines = [f"Marked {len(result.lines)} line(s) {state}:"]
    lines.extend(f"- {label}: {_safe(_snippet(line))}" for label, line in result.lines[:MAX_LISTED])
    return "\n".join(lines)


def render_hits(query: str, hits: Sequence[SearchHit]) -> str:
    """Search results, best first."""
    if not hits:
        return f"Nothing in your memory matches “{_safe(query)}”."
    lines = [f"**Memory matching “{_safe(query)}”** (best {min(len(hits), MAX_LISTED)} of {len(hits)})"]
    for hit in hits[:MAX_LISTED]:
        who = f"{hit.author}: " if hit.author else ""
        text = f"{hit.text} (attached: {hit.attachment_text})" if hit.attachment_text else hit.text
        lines.append(f"- <t:{int(hit.timestamp.timestamp())}:d> {_safe(who + _snippet(text))}")
    return "\n".join(lines)


def render_reminders(reminders: Sequence[Reminder], *, public: bool = False, missing: str | None = None) -> str:
    """The user's pending reminders with their ids (to cancel one: ``/memory reminders cancel:<id>``); ``missing``:
    the id the user asked to cancel and has no reminder of."""
    note = " (in a server I list only the reminders set there; DM me for the others)" if public else ""
    lead = f"You have no pending reminder `{_safe(missing)}`. " if missing is not None else ""
    if not reminders:
        return f"{lead}You have no pending reminders.{note}"
    lines = [f"{lead}**Your reminders** ({len(reminders)}){note}"]
    for reminder in reminders[:MAX_LISTED]:
        when = f"<t:{int(reminder.due.timestamp())}:f>"
        lines.append(f"- `{reminder.id}` {when} ({_safe(reminder.local_due())}): {_safe(_snippet(reminder.text))}")
    if len(reminders) > MAX_LISTED:
        lines.append(f"- … and {len(reminders) - MAX_LISTED} more")
    lines.append("Cancel one with `/memory reminders cancel:<id>`.")
    return "\n".join(lines)


def render_cancelled(reminder: Reminder) -> str:
    return f"Cancelled your reminder for {_safe(reminder.local_due())}: {_safe(_snippet(reminder.text))}"


def render_candidates(query: str, candidates: Sequence[ForgetCandidate]) -> str:
    """What a forget would remove, with the question to confirm."""
    names = {"recall": "message", "archival": "note"}
    lines = [f"**Forget “{_safe(query)}”?** These {len(candidates)} items would be erased for good:"]
    for candidate in candidates[:MAX_LISTED]:
        kind = names.get(candidate.store, "core memory line")
        lines.append(f"- {kind}: {_safe(_snippet(candidate.text))}")
    if len(candidates) > MAX_LISTED:
        lines.append(f"- … and {len(candidates) - MAX_LISTED} more")
    return "\n".join(lines)
