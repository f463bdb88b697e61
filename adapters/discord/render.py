"""Text of membot's slash-command answers (pure functions; Discord Markdown)."""

from __future__ import annotations

from collections.abc import Sequence

from discord.utils import escape_markdown, escape_mentions

from bot.admin import ForgetCandidate, MemoryView
from bot.memory_types import SearchHit

SNIPPET_CHARS = 200
MAX_LISTED = 10


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
    for block in view.blocks:
        lines.append(f"\n**{block.label}** ({block.chars}/{block.limit} characters)")
        lines.append(_quote(block.value) if block.value.strip() else "*(empty)*")
    if view.summary.strip():
        lines.append("\n**Summary of older conversation**")
        lines.append(_quote(view.summary))
    return "\n".join(lines)


def render_hits(query: str, hits: Sequence[SearchHit]) -> str:
    """Search results, best first."""
    if not hits:
        return f"Nothing in your memory matches “{_safe(query)}”."
    lines = [f"**Memory matching “{_safe(query)}”** (best {min(len(hits), MAX_LISTED)} of {len(hits)})"]
    for hit in hits[:MAX_LISTED]:
        who = f"{hit.author}: " if hit.author else ""
        lines.append(f"- <t:{int(hit.timestamp.timestamp())}:d> {_safe(who + _snippet(hit.text))}")
    return "\n".join(lines)


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
