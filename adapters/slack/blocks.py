"""Block Kit builders for memory answers, search results and the confirm prompts. Pure functions.

Action ids (handled in ``commands.py``): ``memory_reset_confirm`` (value: ``{"agent"}``), ``memory_forget_confirm``
(value: ``{"agent", "q", "fp", "s"}``, "s" the view scope), ``memory_cancel``, ``memory_home_forget``. Buttons that
erase memory carry a Block Kit confirm dialog as well, so a slip of the mouse never erases anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.admin.audit import HistoryItem
from bot.admin.memory import ForgetCandidate, MemoryView
from bot.admin.repair import MarkResult, RollbackResult
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import Block as CoreBlock
from bot.core.memory_types import Reminder, SearchHit

from .mrkdwn import escape

Block = dict[str, Any]

RESET_ACTION = "memory_reset_confirm"
FORGET_ACTION = "memory_forget_confirm"
CANCEL_ACTION = "memory_cancel"
HOME_FORGET_ACTION = "memory_home_forget"
REMINDER_CANCEL_ACTION = "memory_reminder_cancel"
SECTION_LIMIT = 3000
SHOWN_CANDIDATES = 15
CHANGE_LINES = 6  # per history entry
LINE_CHARS = 200


def section(text: str) -> Block:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 30].rsplit("\n", 1)[0] + "\n… (shortened)"
        if text.count("```") % 2:
            text += "\n```"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def button(
    text: str, action_id: str, value: str = "", *, style: str | None = None, confirm: Block | None = None
) -> Block:
    element: Block = {"type": "button", "text": plain(text), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, confirm: str) -> Block:
    return {
        "title": plain(title[:100]),
        "text": {"type": "mrkdwn", "text": text[:300]},
        "confirm": plain(confirm[:30]),
        "deny": plain("Cancel"),
        "style": "danger",
    }


def slack_date(when: datetime | None) -> str:
    if when is None:
        return "never"
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def memory_blocks(view: MemoryView, title: str) -> list[Block]:
    """Core memory blocks, counts of recall/archival entries, and the summary of older talk."""
    blocks: list[Block] = [header(title), *core_sections(view.blocks)]
    if view.summary.strip():
        blocks.append(section(f"*Summary of older conversations*\n{escape(view.summary.strip())}"))
    blocks.append(context(counts_text(view)))
    if view.scope is Scope.PUBLIC:
        blocks.append(
            context(
                f"Shown as in a channel: {view.hidden} private line(s) and the summary of older conversations are "
                "left out. `/memory show` in a direct message with me shows everything."
            )
        )
    return blocks


def core_sections(core: Sequence[CoreBlock]) -> list[Block]:
    sections = []
    for block in core:
        value = escape(block.value.strip()) or "(empty)"
        sections.append(section(f"*{block.label}* ({block.chars:,}/{block.limit:,} characters)\n```\n{value}\n```"))
    return sections


def history_blocks(items: Sequence[HistoryItem], whose: str) -> list[Block]:
    """Audit entries, newest first, each with the core lines it changed (clipped); one section per entry."""
    if not items:
        return [section(f"No memory changes are recorded for {whose} memory.")]
    blocks: list[Block] = [
        section(f"*Changes to {whose} memory* (newest first; roll core memory back with a `vN` number)")
    ]
    for item in items:
        changes = item.change_lines(LINE_CHARS)
        lines = [f"• {escape(item.headline)}", *(f"      {escape(line)}" for line in changes[:CHANGE_LINES])]
        if len(changes) > CHANGE_LINES:
            lines.append(f"    … and {len(changes) - CHANGE_LINES} more line(s)")
        blocks.append(section("\n".join(lines)))
    return blocks


def rollback_blocks(result: RollbackResult) -> list[Block]:
    note = (
        f"Done: core memory is back to version {result.to} (recorded as version {result.version}; roll back to "
        f"version {result.version - 1} to undo)."
    )
    return [section(note), *core_sections(result.blocks)]


def marked_text(result: MarkResult, query: str) -> str:
    if not result.lines:
        other = "public" if result.private else "private"
        return f"No {other} core memory line I can show here matches *{escape(query)}*."
    state = "private" if result.private else "public"
    lines = [f"Marked {len(result.lines)} line(s) {state}:"]
    lines.extend(f"• _{label}_ — {escape(line)[:LINE_CHARS]}" for label, line in result.lines[:SHOWN_CANDIDATES])
    return "\n".join(lines)


def counts_text(view: MemoryView) -> str:
    return (
        f"Recall memory: {view.recall_count:,} messages · Archival memory: {view.archival_count:,} notes · "
        f"Last changed: {slack_date(view.last_modified)}"
    )


def memory_text(view: MemoryView) -> str:
    """Plain fallback text of a memory view (notifications, clients without Block Kit)."""
    core = "; ".join(f"{b.label}: {b.value.strip()[:200]}" for b in view.blocks)
    return f"{core} ({view.recall_count} recall messages, {view.archival_count} archival notes)"


def hits_blocks(query: str, hits: Sequence[SearchHit], note: str = "") -> list[Block]:
    if not hits:
        return [section(f"Nothing in my memory matches *{escape(query)}*.{note}")]
    lines = [f"*What I remember about* _{escape(query)}_{note}"]
    for hit in hits[:10]:
        who = f"{hit.author}: " if hit.author else ""
        text = f"{hit.text.strip()} (attached: {hit.attachment_text})" if hit.attachment_text else hit.text.strip()
        lines.append(f"• {hit.timestamp:%Y-%m-%d} — {escape(who + text)[:280]}")
    return [section("\n".join(lines))]


def fingerprint(candidates: Sequence[ForgetCandidate]) -> str:
    """A short digest of exactly what a forget would remove, checked again when the button is pressed."""
    joined = "\n".join(sorted(f"{c.store}|{c.id}" for c in candidates))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def candidate_lines(candidates: Sequence[ForgetCandidate]) -> str:
    labels = {"recall": "message", "archival": "note"}
    lines = []
    for item in candidates[:SHOWN_CANDIDATES]:
        kind = labels.get(item.store, item.store.replace("core:", "core memory, "))
        lines.append(f"• _{kind}_ — {escape(item.text.strip())[:200]}")
    if len(candidates) > SHOWN_CANDIDATES:
        lines.append(f"… and {len(candidates) - SHOWN_CANDIDATES} more")
    return "\n".join(lines)


def forget_prompt_blocks(
    agent: AgentKey,
    query: str,
    candidates: Sequence[ForgetCandidate],
    note: str = "",
    scope: Scope = Scope.PRIVATE,
) -> list[Block]:
    """The list of what would be forgotten (as a context of ``scope`` may show it), with a confirm button."""
    count = len(candidates)
    fields = {"agent": str(agent), "q": query, "fp": fingerprint(candidates), "s": scope.value}
    value = json.dumps(fields, ensure_ascii=False)
    dialog = confirm_dialog("Forget these?", f"I will permanently forget {count} item(s) matching “{query}”.", "Forget")
    return [
        section(
            f"{note}I would forget these {count} item(s) matching *{escape(query)}*:\n{candidate_lines(candidates)}"
        ),
        {
            "type": "actions",
            "elements": [
                button(f"Forget {count} item(s)", FORGET_ACTION, value, style="danger", confirm=dialog),
                button("Cancel", CANCEL_ACTION),
            ],
        },
    ]


def reset_prompt_blocks(agent: AgentKey, whose: str) -> list[Block]:
    """A warning and a confirm button that erases every memory of ``agent``."""
    value = json.dumps({"agent": str(agent)})
    dialog = confirm_dialog(
        "Reset memory?", f"This erases everything I remember about {whose}. It cannot be undone.", "Reset"
    )
    return [
        section(
            f"This erases *everything* I remember about {whose}: core memory and its versions, our conversation "
            "history, archival notes and the log of changes. It cannot be undone."
        ),
        {
            "type": "actions",
            "elements": [
                button("Reset memory", RESET_ACTION, value, style="danger", confirm=dialog),
                button("Cancel", CANCEL_ACTION),
            ],
        },
    ]


def reminders_blocks(agent: AgentKey, reminders: list[Reminder], note: str = "") -> list[Block]:
    """The user's pending reminders, each with a Cancel button (``REMINDER_CANCEL_ACTION``)."""
    if not reminders:
        return [section(f"You have no pending reminders.{note}")]
    blocks: list[Block] = [header(f"Your reminders ({len(reminders)})")]
    for reminder in reminders[:SHOWN_CANDIDATES]:
        value = json.dumps({"agent": str(agent), "id": reminder.id})
        block = section(f"*{escape(reminder.local_due())}* · `{reminder.id}`\n{escape(reminder.text[:LINE_CHARS])}")
        block["accessory"] = button("Cancel", REMINDER_CANCEL_ACTION, value)
        blocks.append(block)
    if len(reminders) > SHOWN_CANDIDATES:
        blocks.append(context(f"…and {len(reminders) - SHOWN_CANDIDATES} more."))
    if note:
        blocks.append(context(note.strip()))
    return blocks
