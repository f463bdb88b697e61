"""Splitting answers into Discord messages: under 2,000 characters, code fences intact, words whole."""

from __future__ import annotations

import re

import pytest

from adapters.discord.split import MESSAGE_CHAR_LIMIT, split_message
from tests.standins.brain import LONG_ANSWER

FENCE_LINE = re.compile(r"^ {0,3}(`{3,}[^`]*|~{3,}.*)$")


def fence_lines(chunk: str) -> list[str]:
    return [line for line in chunk.split("\n") if FENCE_LINE.match(line)]


def words(text: str) -> list[str]:
    """Words of the text, fence markers left out (splitting adds closing/reopening markers)."""
    return [w for w in text.split() if not FENCE_LINE.match(w)]


def assert_well_formed(text: str, chunks: list[str], limit: int = MESSAGE_CHAR_LIMIT) -> None:
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert all(len(fence_lines(chunk)) % 2 == 0 for chunk in chunks), "every message closes the fences it opens"
    assert words("\n".join(chunks)) == words(text), "no word lost, added or broken"


def test_short_text_is_one_message_and_blank_text_none() -> None:
    assert split_message("hello **world**") == ["hello **world**"]
    assert split_message("x" * MESSAGE_CHAR_LIMIT) == ["x" * MESSAGE_CHAR_LIMIT]
    assert split_message("  \n\n ") == []


def test_five_thousand_characters_with_code_become_three_messages_with_fences_intact() -> None:
    assert 4800 <= len(LONG_ANSWER) <= 5200
    chunks = split_message(LONG_ANSWER)
    assert len(chunks) == 3
    assert_well_formed(LONG_ANSWER, chunks)
    assert chunks[0].endswith("```") and chunks[1].startswith("```python\n"), "the block is closed and reopened"
    assert chunks[2].startswith("```python\n")
    assert chunks[1].split("\n")[1].startswith("def step_"), "the break falls between functions (a blank line)"


def test_long_prose_breaks_between_lines_or_words_never_inside_a_word() -> None:
    text = "\n".join(f"Line {i}: " + "lorem ipsum dolor sit amet " * 5 for i in range(60))
    chunks = split_message(text)
    assert len(chunks) == -(-len(text) // MESSAGE_CHAR_LIMIT)
    assert_well_formed(text, chunks)
    one_line = "word " * 1500
    chunks = split_message(one_line)
    assert_well_formed(one_line, chunks)
    assert all(chunk.endswith("word") for chunk in chunks)


def test_paragraphs_stay_together_when_possible() -> None:
    first, second = "a" * 5 + " alpha" * 200, "b" * 5 + " beta" * 200
    chunks = split_message(f"{first}\n\n{second}")
    assert chunks == [first, second]


def test_a_word_longer_than_a_message_is_cut_hard() -> None:
    url = "https://example.com/" + "x" * 4500
    chunks = split_message(f"see {url} now")
    assert all(len(chunk) <= MESSAGE_CHAR_LIMIT for chunk in chunks)
    assert "".join(chunks) == f"see {url} now"
    assert len(chunks[0]) == MESSAGE_CHAR_LIMIT, "no stub message before the long word"
    short_then_long = "word " * 150 + "y" * 1500
    assert split_message(short_then_long) == ["word " * 149 + "word", "y" * 1500], "a word that fits moves whole"


@pytest.mark.parametrize(("opening", "closing"), [("~~~sql", "~~~"), ("````md", "````"), ("```", "```")])
def test_other_fence_styles_are_closed_with_their_own_marker(opening: str, closing: str) -> None:
    body = "\n".join(f"select {i} from numbers;" for i in range(200))
    text = f"Here:\n{opening}\n{body}\n{closing}\nDone."
    chunks = split_message(text, limit=500)
    assert_well_formed(text, chunks, limit=500)
    for chunk in chunks[:-1]:
        assert chunk.endswith(closing)
    for chunk in chunks[1:]:
        assert chunk.startswith(opening + "\n") or not chunk.startswith(opening[:3])


def test_inline_triple_backticks_are_not_a_fence() -> None:
    text = "\n".join(f"use ```x = {i}``` inline" for i in range(300))
    chunks = split_message(text)
    assert_well_formed(text, chunks)
    assert not any(chunk.startswith("```") and "\n" in chunk[:4] for chunk in chunks)


def test_limit_must_leave_room() -> None:
    with pytest.raises(ValueError, match="at least"):
        split_message("text", limit=10)
