"""Block Kit builders for memory answers, search results and the confirm prompts. Pure functions.

Action ids (handled in ``commands.py``): ``memory_reset_confirm`` (value: ``{"agent"}``), ``memory_forget_confirm``
(value: ``{"agent", "q", "fp"}``), ``memory_cancel``, ``memory_home_forget``. Buttons that erase memory carry a
Block Kit confirm dialog as well, so a slip of the mouse never erases anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.admin import ForgetCandidate, MemoryView
from bot.events import AgentKey
from bot.memory_types import SearchHit

from .mrkdwn import escape

Block = dict[str, Any]

RESET_ACTION = "memory_reset_confirm"
FORGET_ACTION = "memory_forget_confirm"
CANCEL_ACTION = "memory_cancel"
HOME_FORGET_ACTION = "memory_home_forget"
SECTION_LIMIT = 3000
SHOWN_CANDIDATES = 15


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
    blocks: list[Block] = [header(title)]
    for block in view.blocks:
        value = escape(block.value.strip()) or "(empty)"
        blocks.append(section(f"*{block.label}* ({block.chars:,}/{block.limit:,} characters)\n```\n{value}\n```"))
    if view.summary.strip():
        blocks.append(section(f"*Summary of older conversations*\n{escape(view.summary.strip())}"))
    blocks.append(context(counts_text(view)))
    return blocks


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
        lines.append(f"• {hit.timestamp:%Y-%m-%d} — {escape(who + hit.text.strip())[:280]}")
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
    agent: AgentKey, query: str, candidates: Sequence[ForgetCandidate], note: str = ""
) -> list[Block]:
    """The list of what would be forgotten, with a confirm button."""
    count = len(candidates)
    value = json.dumps({"agent": str(agent), "q": query, "fp": fingerprint(candidates)}, ensure_ascii=False)
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
            f"This erases *everything* I remember about {whose}: core memory, our conversation history and "
            "archival notes. It cannot be undone."
        ),
        {
            "type": "actions",
            "elements": [
                button("Reset memory", RESET_ACTION, value, style="danger", confirm=dialog),
                button("Cancel", CANCEL_ACTION),
            ],
        },
    ]
