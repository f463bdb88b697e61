"""Images sent to membot on Discord, through discord.py and the Discord stand-in (which serves the downloads)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from bot.core.events import AgentKey, Scope
from tests.discord.conftest import DiscordHarness
from tests.discord.helpers import MENTION, answer_to, imported
from tests.standins.brain import describe_image, fingerprint
from tests.standins.discord_server import ALICE, BOT, GENERAL, GUILD_ID
from tests.standins.images import make_png

PHOTO = make_png(64, 48, (250, 200, 10))


def images_seen(harness: DiscordHarness) -> list[list[bytes]]:
    return [[base64.b64decode(i["data"]) for i in r.images] for r in harness.llm.requests]


@pytest.mark.parametrize("discord_settings", [{"MEMBOT_VISION": "on"}])
async def test_an_image_in_a_dm_is_shown_to_the_model_and_remembered(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    files = (
        discord_api.attachment("sunflower.png", PHOTO, "image/png"),
        discord_api.attachment("IMG_7.HEIC", b"\x00\x00\x00\x18ftypheic", "image/heic"),
        discord_api.attachment("notes.md", b"# Garden\n\nThe sunflowers face east.\n", "text/markdown"),
        discord_api.attachment("gone.png", PHOTO, "image/png"),
    )
    del discord_api.attachments["gone.png"]  # Discord's CDN answers 404
    sent = await discord_api.send_message(ALICE, "my garden today", attachments=files)
    replies = [r.json["content"] for r in await answer_to(discord_api, sent, count=3)]
    assert replies[0] == "Importing notes.md…", "the import's status message"
    assert (await imported(discord_api, sent)).startswith("Imported notes.md into my archival memory")
    assert replies[1].splitlines() == [
        "I couldn't look at IMG_7.HEIC: it is a HEIC image, and I can look at PNG, JPEG, GIF and WebP images.",
        "I couldn't look at gone.png: I couldn't download it from Discord.",
    ]
    assert replies[2].startswith("echo: my garden today")
    describe, *turn = harness.llm.requests
    assert "You describe images" in describe.system
    assert images_seen(harness) == [[PHOTO]] * len(harness.llm.requests), "downloaded, in every call of the turn"
    assert "[image attached: gone.png; not shown to you: I couldn't download it from Discord" in str(turn[0].messages)

    agent = AgentKey("discord", "dm", ALICE["id"])
    hits = await harness.app.services.admin.search(agent, fingerprint(PHOTO), Scope.PRIVATE)
    [hit] = [h for h in hits if h.text == "my garden today"]
    assert hit.attachment_text is not None
    assert f"sunflower.png: {describe_image('sunflower.png', PHOTO)}" in hit.attachment_text
    assert "IMG_7.HEIC (image, not looked at)" in hit.attachment_text


@pytest.mark.parametrize("discord_settings", [{"MEMBOT_VISION": "on"}])
async def test_an_image_with_a_bare_mention_in_a_server_is_answered(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    files = (discord_api.attachment("chart.png", PHOTO, "image/png"),)
    sent = await discord_api.send_message(ALICE, MENTION, channel_id=GENERAL, mentions=(BOT,), attachments=files)
    [reply] = await answer_to(discord_api, sent)
    assert "[image attached: chart.png]" in reply.json["content"]
    assert images_seen(harness)[-1] == [PHOTO]
    agent = AgentKey("discord", str(GUILD_ID), ALICE["id"])
    [stored] = [e for e in (await harness.app.services.admin.export(agent))["recall"] if e["role"] == "user"]
    assert stored["text"] == "[chart.png]" and stored["scope"] == "public"


async def test_without_vision_nothing_is_downloaded_and_the_user_is_told(harness: DiscordHarness) -> None:
    discord_api = harness.discord
    files: tuple[Any, ...] = (discord_api.attachment("cat.jpg", b"\xff\xd8\xff\xe0 not really", "image/jpeg"),)
    sent = await discord_api.send_message(ALICE, "", attachments=files)
    notice, answer = [r.json["content"] for r in await answer_to(discord_api, sent, count=2)]
    assert notice == "I can't look at images with the current model, so I didn't see cat.jpg."
    assert "the current model cannot see images" in answer
    assert images_seen(harness) == [[]]
