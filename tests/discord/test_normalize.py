"""Pure pieces of the Discord adapter: when to answer, message text, the REST base, document import helpers."""

from __future__ import annotations

import pytest

from adapters.discord.adapter import discord_rest_base, rest_base
from adapters.discord.attachments import is_document
from adapters.discord.normalize import Addressing, Reason, agent_for, answer_reason, clean_text
from bot.admin.chunking import chunk_text
from bot.settings import ConfigError

BOT_ID = 42


def facts(**changes: object) -> Addressing:
    values: dict[str, object] = {
        "from_self": False,
        "from_bot": False,
        "is_dm": False,
        "mentions_bot": False,
        "replies_to_bot": False,
        "channel_mode": "mention",
    }
    values.update(changes)
    return Addressing(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"is_dm": True}, Reason.DM),
        ({"mentions_bot": True}, Reason.MENTION),
        ({"replies_to_bot": True}, Reason.REPLY),
        ({"channel_mode": "always"}, Reason.ALWAYS),
        ({"from_bot": True, "is_dm": True}, None),
        ({"from_bot": True, "mentions_bot": True}, None),
        ({"from_self": True, "channel_mode": "always"}, None),
    ],
)
def test_answer_reason(changes: dict[str, object], reason: Reason | None) -> None:
    assert answer_reason(facts(**changes)) == reason


def test_clean_text_drops_the_leading_mention_and_names_the_others() -> None:
    names = {"users": {7: "Alice"}, "roles": {9: "mods"}, "channels": {11: "general"}}
    assert clean_text(f"<@{BOT_ID}> hi", BOT_ID, "membot", **names) == "hi"
    assert clean_text(f"<@!{BOT_ID}>, <@{BOT_ID}>: hi", BOT_ID, "membot", **names) == "hi"
    assert clean_text(f"ask <@{BOT_ID}> and <@7>", BOT_ID, "membot", **names) == "ask @membot and @Alice"
    assert clean_text("<@&9> see <#11> and <@8>", BOT_ID, "membot", **names) == "@mods see #general and @unknown-user"
    assert clean_text("<@&5> hello", BOT_ID, "membot", bot_role_ids=frozenset({5}), **names) == "hello"
    assert clean_text(f"<@{BOT_ID}>", BOT_ID, "membot", **names) == ""


def test_agent_keys_match_inbound_messages() -> None:
    assert str(agent_for(123, 456)) == "discord:123:456"
    assert str(agent_for(None, 456)) == "discord:dm:456"


def test_rest_base_accepts_a_host_or_a_full_base() -> None:
    assert rest_base("http://127.0.0.1:8080") == "http://127.0.0.1:8080/api/v10"
    assert rest_base("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/api/v10"
    assert rest_base("https://proxy.example/api/v10/") == "https://proxy.example/api/v10"
    with pytest.raises(ConfigError, match="DISCORD_API_BASE_URL"):
        rest_base("discord.example")


def test_the_rest_base_is_restored_after_the_adapter_stops() -> None:
    from discord.http import Route

    original = Route.BASE
    with discord_rest_base("http://127.0.0.1:1"):
        assert Route("GET", "/users/@me").url == "http://127.0.0.1:1/api/v10/users/@me"
    assert original == Route.BASE
    with discord_rest_base(None):
        assert original == Route.BASE


@pytest.mark.parametrize(
    ("filename", "content_type", "ok"),
    [
        ("notes.md", None, True),
        ("NOTES.TXT", "application/octet-stream", True),
        ("data.csv", "text/csv; charset=utf-8", True),
        ("photo.png", "image/png", False),
        ("script", None, False),
        ("scan", "application/pdf", True),
        ("report.docx", None, True),
    ],
)
def test_which_attachments_are_imported(filename: str, content_type: str | None, ok: bool) -> None:
    assert is_document(filename, content_type) is ok


def test_chunk_text_keeps_paragraphs_and_words_whole() -> None:
    paragraphs = [f"Paragraph {i}. " + "Some words here. " * 20 for i in range(8)]
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, 1000)
    assert all(len(chunk) <= 1000 for chunk in chunks)
    assert " ".join(chunks).split() == text.split()
    assert all(chunk.startswith("Paragraph") for chunk in chunks), "chunks start at paragraph boundaries"
    long_paragraph = "A sentence that goes on. " * 200
    assert all(len(c) <= 1000 for c in chunk_text(long_paragraph, 1000))
    assert chunk_text("  \n\n  ") == []
    assert chunk_text("x" * 2500, 1000) == ["x" * 1000, "x" * 1000, "x" * 500]
