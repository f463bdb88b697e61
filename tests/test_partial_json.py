"""StringFieldReader: one string field of a JSON object read from fragments cut anywhere."""

from __future__ import annotations

import json
import random

import pytest

from bot.llm.partial_json import StringFieldReader
from bot.llm.streaming import PreviewFeed

TEXTS = [
    "Hello, world.",
    'She said "hi" \\ and left / ok',
    "tab\tnew\nline\rreturn\bback\fform",
    "caf\u00e9 na\u00efve \u4e2d\u6587 \U0001f600\U0001f44d\U0001f3fd end",
    "control \x01 chars \x1f and \u2028 separators",
    "",
    "```python\nprint('x')\n```\n" * 3,
]
OBJECTS = [{"message": text} for text in TEXTS] + [
    {"request_heartbeat": True, "message": "after a bool"},
    {"n": -12.5e3, "message": "after a number", "z": None},
    {"nested": {"message": "not me", "a": [1, {"b": "}\\"}], "x": "]"}, "message": "the top one"},
    {"list": ["message", '"message"'], "message": "after a tricky list"},
]


def read_in(pieces: list[str]) -> tuple[StringFieldReader, list[str]]:
    reader = StringFieldReader("message")
    seen: list[str] = []
    for piece in pieces:
        if reader.feed(piece):
            assert reader.value is not None
            seen.append(reader.value)
    return reader, seen


def encodings(obj: dict[str, object]) -> list[str]:
    return [
        json.dumps(obj),  # \u escapes, surrogate pairs as \ud83d\ude00
        json.dumps(obj, ensure_ascii=False),
        json.dumps(obj, indent=2),
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False),
    ]


@pytest.mark.parametrize("obj", OBJECTS)
def test_every_two_way_split_gives_the_exact_value(obj: dict[str, object]) -> None:
    for text in encodings(obj):
        expected = json.loads(text)["message"]
        for cut in range(len(text) + 1):
            reader, seen = read_in([text[:cut], text[cut:]])
            assert reader.value == expected and reader.complete, (text, cut)
            assert all(expected.startswith(value) for value in seen)


@pytest.mark.parametrize("obj", OBJECTS)
def test_one_character_at_a_time_grows_by_prefixes(obj: dict[str, object]) -> None:
    for text in encodings(obj):
        expected = json.loads(text)["message"]
        reader, seen = read_in(list(text))
        assert reader.value == expected
        assert all(expected.startswith(value) for value in seen)
        assert seen == sorted(seen, key=len)


def test_random_splits_of_a_long_message() -> None:
    rng = random.Random(7)
    message = "".join(
        rng.choice(['"', "\\", "\n", "é", "\U0001f600", "a", " ", "\t", "/", "\u0000"]) for _ in range(3000)
    )
    for text in encodings({"message": message, "request_heartbeat": False}):
        for _ in range(20):
            cuts = sorted(rng.sample(range(len(text)), 40))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            reader, _ = read_in(pieces)
            assert reader.value == message


def test_a_surrogate_pair_split_across_fragments_is_one_character() -> None:
    reader, seen = read_in(['{"message": "x\\ud8', "3d\\u", "de00", 'y"}'])
    assert reader.value == "x\U0001f600y"
    assert "\ud83d" not in "".join(seen)  # the high half alone was never shown


def test_the_value_is_none_until_the_string_begins() -> None:
    reader = StringFieldReader("message")
    for piece in ['{"mess', 'age"', " :", " "]:
        reader.feed(piece)
        assert reader.value is None
    assert reader.feed('"') and reader.value == "" and not reader.complete
    assert reader.feed("Hi") and reader.value == "Hi"
    assert not reader.feed("\\") and reader.value == "Hi"  # an escape waits for its second half
    assert reader.feed("n") and reader.value == "Hi\n"


def test_a_repeated_key_starts_over_as_json_loads_keeps_the_last() -> None:
    text = '{"message": "first", "message": "second"}'
    reader, _ = read_in([text])
    assert reader.value == json.loads(text)["message"] == "second"


@pytest.mark.parametrize(
    "text",
    ["not json at all", '["message", "x"]', '{"message": 42}', '{"other": "x"}', '{"message" "x"}', "", "{}"],
)
def test_text_without_the_field_never_raises(text: str) -> None:
    reader, seen = read_in(list(text))
    assert reader.value is None and seen == []


def test_broken_escapes_are_kept_as_text() -> None:
    reader, _ = read_in(['{"message": "a\\q b \\u12zz c"}'])
    assert reader.value == "aq b \\u12zz c"


class Recorder:
    tool = "send_message"
    argument = "message"

    def __init__(self) -> None:
        self.grown: list[tuple[int, str]] = []
        self.restarts = 0

    def restart(self) -> None:
        self.restarts += 1

    def grow(self, index: int, text: str) -> None:
        self.grown.append((index, text))


def test_the_feed_numbers_only_the_previewed_function_and_waits_for_its_name() -> None:
    recorder = Recorder()
    feed = PreviewFeed(recorder)
    feed.name(0, "core_memory_append")
    feed.arguments(0, '{"message": "no"}')
    feed.arguments(3, '{"message": "ea')  # arguments before the name (kept until the name arrives)
    feed.name(3, "send_")
    feed.name(3, "message")
    feed.arguments(3, 'rly"}')
    feed.name(5, "send_message")
    feed.arguments(5, '{"message": "two"}')
    assert recorder.restarts == 1
    assert recorder.grown == [(0, "ea"), (0, "early"), (1, "two")]


def test_a_feed_without_preview_does_nothing() -> None:
    feed = PreviewFeed(None)
    feed.name(0, "send_message")
    feed.arguments(0, '{"message": "x"}')
