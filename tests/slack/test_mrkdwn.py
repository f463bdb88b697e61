"""Markdown → Slack mrkdwn, and splitting under Slack's limits (pure functions)."""

from __future__ import annotations

import pytest

from adapters.slack.mrkdwn import MESSAGE_LIMIT, format_reply, split_message, to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("***both***", "*_both_*"),
        ("~~gone~~", "~gone~"),
        ("a*b*c and snake_case_name stay", "a*b*c and snake_case_name stay"),
        ("`x < y && z`", "`x &lt; y &amp;&amp; z`"),
        ("`**not bold**`", "`**not bold**`"),
        ("[docs](https://example.com/a?b=1&c=2)", "<https://example.com/a?b=1&amp;c=2|docs>"),
        ("![a cat](https://example.com/cat.png)", "<https://example.com/cat.png|a cat>"),
        ("<https://example.com>", "<https://example.com>"),
        ("see [**this** one](https://x.io)", "see <https://x.io|this one>"),
        ("[`code` label](https://x.io)", "<https://x.io|`code` label>"),
        ("1 < 2 & 3 > 2", "1 &lt; 2 &amp; 3 &gt; 2"),
        ("hi <@U123ABC> in <#C42|general>", "hi <@U123ABC> in <#C42|general>"),
        ("<!channel> <!here> attention", "&lt;!channel&gt; &lt;!here&gt; attention"),
        ("# Title", "*Title*"),
        ("### A **bold** heading", "*A bold heading*"),
        ("- one\n- two\n  - nested", "• one\n• two\n    ◦ nested"),
        ("* star item with *italic*", "• star item with _italic_"),
        ("1. first\n2) second", "1. first\n2. second"),
        ("> quoted **text**", "> quoted *text*"),
        ("---", "──────────"),
    ],
)
def test_markdown_to_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_code_blocks_are_kept_verbatim_except_for_escaping() -> None:
    markdown = "Look:\n```python\nif a < b:\n    print('**x**', [1](2))\n```\nafter *that*"
    assert to_mrkdwn(markdown) == "Look:\n```\nif a &lt; b:\n    print('**x**', [1](2))\n```\nafter _that_"


def test_placeholder_characters_in_the_input_are_dropped() -> None:
    assert to_mrkdwn("`\x020\x03` and \x01x\x01") == "`0` and x"


def test_an_unclosed_code_block_is_closed() -> None:
    assert to_mrkdwn("```\ncode") == "```\ncode\n```"


def test_short_text_is_one_message() -> None:
    assert format_reply("hello **you**") == ["hello *you*"]
    assert format_reply("") == [""]


def test_long_text_splits_between_paragraphs_within_the_limit() -> None:
    paragraphs = [f"paragraph {i} " + "x" * 900 for i in range(10)]
    pieces = split_message("\n\n".join(paragraphs))
    assert all(len(p) <= MESSAGE_LIMIT for p in pieces)
    assert "\n\n".join(pieces) == "\n\n".join(paragraphs)
    assert all(p.startswith("paragraph") for p in pieces)  # no paragraph was cut


def test_a_code_block_that_fits_is_never_split() -> None:
    code = "```\n" + "\n".join(f"line {i}" for i in range(200)) + "\n```"
    text = "intro " * 300 + "\n\n" + code + "\n\nend"
    pieces = split_message(text)
    assert any(code in piece for piece in pieces)
    assert all(len(p) <= MESSAGE_LIMIT for p in pieces)


def test_a_code_block_longer_than_the_limit_is_split_into_closed_blocks() -> None:
    code = "```\n" + "\n".join(f"row {i:04d} " + "y" * 50 for i in range(200)) + "\n```"
    pieces = split_message(code)
    assert len(pieces) > 1
    for piece in pieces:
        assert piece.startswith("```\n") and piece.endswith("\n```") and len(piece) <= MESSAGE_LIMIT
    rows = [line for piece in pieces for line in piece.split("\n") if line != "```"]
    assert rows == code.split("\n")[1:-1]


def test_a_line_without_spaces_is_cut_hard_but_never_inside_an_escape() -> None:
    text = "&amp;" * 1000
    pieces = split_message(text, 1001)
    assert "".join(pieces) == text
    assert all(p.startswith("&amp;") and p.endswith("&amp;") for p in pieces)


def test_long_words_split_at_spaces() -> None:
    pieces = split_message("word " * 2000, 100)
    assert all(len(p) <= 100 and not p.endswith(" ") for p in pieces)
    assert " ".join(pieces).split() == ["word"] * 2000
