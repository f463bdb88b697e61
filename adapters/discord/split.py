"""Split long answers into Discord messages (at most 2,000 characters each) without breaking words or code fences.

Lines are packed greedily; a full chunk ends at its last blank line when that keeps it at least half full, so
paragraphs (and blocks of code) stay together. A chunk that ends inside a fenced code block is closed with the
fence's closing marker, and the next chunk reopens it with the same opening line (language tag included), so every
message renders on its own. A single line longer than a message is broken at its last whitespace that fits
(mid-word only when a "word" is itself longer than a message, such as a very long URL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MESSAGE_CHAR_LIMIT = 2000
_MIN_LIMIT = 40
# CommonMark fences: up to 3 spaces, then 3+ backticks (no backtick in the info string) or 3+ tildes.
_BACKTICK_FENCE = re.compile(r"^ {0,3}(`{3,})([^`]*)$")
_TILDE_FENCE = re.compile(r"^ {0,3}(~{3,})(.*)$")


@dataclass(frozen=True)
class _Fence:
    opening: str  # the whole opening line, e.g. "```python"
    marker: str  # the run of backticks or tildes, e.g. "```"


def _fence_after(line: str, fence: _Fence | None) -> _Fence | None:
    """The open fence after ``line``, given the open fence before it."""
    if fence is None:
        match = _BACKTICK_FENCE.match(line) or _TILDE_FENCE.match(line)
        return _Fence(line.strip(), match.group(1)) if match else None
    stripped = line.strip()
    closes = stripped and set(stripped) == {fence.marker[0]} and len(stripped) >= len(fence.marker)
    return None if closes else fence


class _Chunker:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[str] = []
        self.lines: list[str] = []
        self.fences: list[_Fence | None] = []  # the open fence after each line
        self.length = 0  # length of "\n".join(self.lines)
        self.fence: _Fence | None = None  # fence open after the last line of the chunk
        self.has_content = False  # whether the chunk holds more than a reopened fence line

    def _cost(self, line: str, fence_after: _Fence | None) -> int:
        closing = 1 + len(fence_after.marker) if fence_after else 0
        return self.length + (1 if self.lines else 0) + len(line) + closing

    def _append(self, line: str, fence_after: _Fence | None) -> None:
        self.length += (1 if self.lines else 0) + len(line)
        self.lines.append(line)
        self.fences.append(fence_after)
        self.fence = fence_after
        self.has_content = True

    def flush(self) -> None:
        if self.has_content:
            lines = [*self.lines, self.fence.marker] if self.fence else self.lines
            chunk = "\n".join(lines).rstrip()
            if chunk.strip():
                self.chunks.append(chunk)
        self.lines, self.fences, self.length, self.has_content = [], [], 0, False
        if self.fence:
            # reopen with the same line (keeps the language tag) unless that line would crowd the chunk
            opening = self.fence.opening if len(self.fence.opening) <= self.limit // 4 else self.fence.marker
            self.lines, self.fences, self.length = [opening], [self.fence], len(opening)

    def _take_tail(self) -> list[str]:
        """Remove and return the lines after the chunk's last blank line, if the chunk stays at least half full."""
        for index in range(len(self.lines) - 1, 0, -1):
            if not self.lines[index].strip():
                kept = self.lines[:index]
                kept_length = len("\n".join(kept))
                if kept_length < self.limit // 2 or not any(line.strip() for line in kept):
                    return []
                tail = self.lines[index + 1 :]
                self.lines, self.fences, self.length = kept, self.fences[:index], kept_length
                self.fence = self.fences[-1]
                return tail
        return []

    def add(self, line: str) -> None:
        fence_after = _fence_after(line, self.fence)
        if self._cost(line, fence_after) <= self.limit:
            self._append(line, fence_after)
            return
        if self.has_content:
            tail = self._take_tail()
            self.flush()
            for moved in tail:
                self.add(moved)
            fence_after = _fence_after(line, self.fence)
            if self._cost(line, fence_after) <= self.limit:
                self._append(line, fence_after)
                return
        self._add_long_line(line)

    def _add_long_line(self, line: str) -> None:
        """A line that does not fit even in an empty chunk: fill chunks with its words."""
        while True:
            room = self.limit - self._cost("", self.fence)
            if len(line) <= room:
                self._append(line, self.fence)
                return
            cut = _break_at(line, room)
            self._append(line[:cut].rstrip(), self.fence)
            self.flush()
            line = line[cut:].lstrip()


def _break_at(line: str, room: int) -> int:
    """Where to cut ``line`` so the first part fits in ``room``: at the last whitespace that fits, unless the
    word after it is too long for any message anyway (then cut that word here, rather than send a stub)."""
    space = max(line.rfind(" ", 0, room + 1), line.rfind("\t", 0, room + 1))
    if space <= 0:
        return room
    next_word = line[space + 1 :].split(maxsplit=1)
    if next_word and len(next_word[0]) > room:
        return room
    return space


def split_message(text: str, limit: int = MESSAGE_CHAR_LIMIT) -> list[str]:
    """Split ``text`` into messages of at most ``limit`` characters; an empty text gives no messages."""
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT} characters")
    text = text.rstrip()
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    chunker = _Chunker(limit)
    for line in text.split("\n"):
        chunker.add(line)
    chunker.flush()
    return chunker.chunks
