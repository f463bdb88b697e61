"""Private lines of core memory, and what a public context may see of memory.

A core memory line is private when it starts with ``[private]``: the user marks lines so (``/memory private``), or
the model appends them so (``core_memory_append`` with ``private: true``). The mark lives in the block text, so it
is versioned, exported and rolled back with the line. In a private context (a DM, the console) every line is
shown, marks included; in a public context (a channel) private lines are left out of the system prompt, of
``memory show`` and of the history shown to admins.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.core.events import Scope
from bot.core.memory_types import PRIVATE_MARK, Block, is_private, marked, unmarked

__all__ = [
    "PRIVATE_MARK",
    "hidden_count",
    "is_private",
    "marked",
    "unmarked",
    "visible_blocks",
    "visible_lines",
    "visible_text",
]


def visible_lines(lines: Iterable[str], scope: Scope) -> list[str]:
    """The lines a context of ``scope`` may show: all in private, the unmarked ones in public."""
    return list(lines) if scope is Scope.PRIVATE else [line for line in lines if not is_private(line)]


def visible_text(text: str, scope: Scope) -> str:
    return "\n".join(visible_lines(text.splitlines(), scope))


def hidden_count(blocks: Iterable[Block], scope: Scope) -> int:
    """How many lines of ``blocks`` a context of ``scope`` leaves out."""
    if scope is Scope.PRIVATE:
        return 0
    return sum(1 for block in blocks for line in block.value.splitlines() if is_private(line))


def visible_blocks(blocks: Iterable[Block], scope: Scope) -> list[Block]:
    """The blocks as a context of ``scope`` may show them (limits unchanged)."""
    return [Block(b.label, visible_text(b.value, scope), b.limit) for b in blocks]
