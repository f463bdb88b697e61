"""A DM's files are imported with their progress in one status message, edited as passages are stored.

The embeddings go to the stand-in's OpenAI embeddings endpoint, which answers each request after 0.1 s (the real
API takes about as long): a 30-page PDF then takes over 3 seconds to import, so the message is edited several
times, at most once a second.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from bot.core.events import AgentKey, Scope
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import answer_to, replies_to
from tests.standins.discord_server import ALICE, RestCall
from tests.test_import import make_pdf

THINGS = ["boiler", "fuse box", "water meter", "ladder", "paint", "bicycle", "freezer", "tent", "drill", "lamp"]
PLACES = ["cellar", "attic", "garage", "hallway", "shed", "kitchen", "loft", "porch", "pantry", "study"]
PAGES = 30
EMBEDDING_SECONDS = 0.1


def manual(pages: int) -> list[str]:
    """Pages different enough that none is a near-duplicate of another."""
    return [
        f"Note {n}: the {THINGS[n % 10]} stays in the {PLACES[(n * 3 + n // 10) % 10]}; check it every {n + 2} days."
        for n in range(pages)
    ]


@pytest.fixture
def discord_settings() -> dict[str, Any]:
    return {"MEMBOT_EMBEDDER": "openai"}  # the stand-in's embeddings endpoint, slowed down by each test


def progress_of(edit: RestCall) -> int | None:
    found = re.fullmatch(r"Importing manual\.pdf… (\d+) of 30 passages", edit.json["content"])
    return int(found.group(1)) if found else None


async def test_a_pdf_import_shows_its_progress_by_editing_one_message(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    harness.llm.embedding_delay = EMBEDDING_SECONDS
    pdf = discord_api.attachment("manual.pdf", make_pdf(manual(PAGES)), "application/pdf")
    sent = await discord_api.send_message(ALICE, "", attachments=(pdf,))
    [status] = await answer_to(discord_api, sent)
    assert status.json["content"] == "Importing manual.pdf…"
    final = "Imported manual.pdf into my archival memory: 30 of 30 passages stored."
    edits_of = discord_api.edits_of(sent["channel_id"], status.response["id"])
    await discord_api.wait_for(lambda call: edits_of(call) and call.json["content"] == final, within=30)
    edits = discord_api.matching(edits_of)
    assert edits[-1].json["content"] == final and len(edits) >= 4
    counts = [progress_of(edit) for edit in edits[:-1]]
    assert all(count is not None for count in counts), [e.json["content"] for e in edits]
    assert counts == sorted(counts) and counts[-1] < PAGES  # counting up, never "done" before the result
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(edits)]
    assert min(gaps) > 0.9, f"edits at most about once a second: {gaps}"
    assert len(replies_to(discord_api, sent)) == 1, "one message, edited; no message per file or per step"
    agent = AgentKey("discord", "dm", ALICE["id"])
    assert await harness.app.stores.archival.count(agent) == PAGES
    hits = await harness.app.services.admin.search(agent, "water meter", Scope.PRIVATE)
    assert any("water meter" in hit.text for hit in hits)


async def test_several_files_share_one_message_and_a_deleted_message_gets_the_result_anew(
    harness: DiscordHarness,
) -> None:
    discord_api = harness.discord
    harness.llm.embedding_delay = EMBEDDING_SECONDS
    files = (
        discord_api.attachment("notes.md", b"# Trip\n\nWe fly to Lisbon on May 3.\n", "text/markdown"),
        discord_api.attachment("manual.pdf", make_pdf(manual(PAGES)), "application/pdf"),
        discord_api.attachment("song.mp3", b"ID3....", "audio/mpeg"),
    )
    sent = await discord_api.send_message(ALICE, "", attachments=files)
    [status] = await answer_to(discord_api, sent)
    assert status.json["content"] == "Importing notes.md…\nmanual.pdf: waiting.\nsong.mp3: waiting."
    edits_of = discord_api.edits_of(sent["channel_id"], status.response["id"])
    [first] = await discord_api.wait_for(lambda call: edits_of(call) and progress_of_line(call) is not None)
    assert first.json["content"].startswith("Imported notes.md into my archival memory: 1 of 1 passages stored.\n")
    assert first.json["content"].endswith("\nsong.mp3: waiting.")
    del discord_api.messages[int(status.response["id"])]  # the user deletes the status message

    [again, result] = await answer_to(discord_api, sent, count=2)
    assert again is status
    lines = result.json["content"].split("\n")
    assert lines[0] == "Imported notes.md into my archival memory: 1 of 1 passages stored."
    assert lines[1] == "Imported manual.pdf into my archival memory: 30 of 30 passages stored."
    assert "PDF and Word (.docx) files, so I skipped song.mp3" in lines[2]
    refused = [call for call in discord_api.matching(edits_of) if call.response.get("code") == 10008]
    assert refused, "an edit was refused: the message is gone"
    agent = AgentKey("discord", "dm", ALICE["id"])
    assert await harness.app.stores.archival.count(agent) == PAGES + 1, "the import went on"


def progress_of_line(edit: RestCall) -> int | None:
    found = re.search(r"Importing manual\.pdf… (\d+) of 30 passages", edit.json["content"])
    return int(found.group(1)) if found else None
