"""Images shared with membot on Slack, through Bolt, slack_sdk and the Web API stand-in (files.info + download)."""

from __future__ import annotations

import base64

from bot.core.events import Scope
from tests.slack.conftest import ANN, MakeSlack
from tests.slack.harness import BOT, SlackHarness, all_text, texts
from tests.standins.brain import describe_image, fingerprint
from tests.standins.images import make_png

PHOTO = make_png(30, 20, (0, 90, 40))


def images_seen(slack: SlackHarness) -> list[list[bytes]]:
    return [[base64.b64decode(i["data"]) for i in r.images] for r in slack.llm.requests]


async def test_an_image_in_a_dm_is_fetched_shown_and_remembered(make_slack: MakeSlack) -> None:
    slack = await make_slack(MEMBOT_VISION="on")
    image = slack.slack.add_file("F0IMG", "forest.png", PHOTO, mimetype="image/png")
    gone = slack.slack.add_file("F0GONE", "gone.jpg", b"\xff\xd8\xff\xe0", mimetype="image/jpeg")
    del slack.slack.files["F0GONE"]  # deleted before membot asked: files.info says file_not_found
    notes = slack.slack.add_file("F0TXT", "notes.txt", b"The forest trail starts at the old mill.")
    await slack.send_event(slack.dm(ANN, "a walk today", subtype="file_share", files=[image, gone, notes]))
    await slack.settle()
    posted = texts(slack.slack.calls_to("chat.postMessage"))
    assert posted[0] == "Importing `notes.txt`…", "the import's status message"
    status = slack.slack.calls_to("chat.postMessage")[0].response
    assert slack.slack.updates(f"D{ANN}", status["ts"])[-1]["text"].startswith("Imported `notes.txt` into my archival")
    assert posted[1] == "I couldn't look at gone.jpg: I couldn't download it from Slack (Slack said: file_not_found)."
    assert posted[2].startswith("echo: a walk today") and len(posted) == 3
    downloads = slack.slack.calls_to("download")
    assert [c.params["file_id"] for c in downloads] == ["F0TXT", "F0IMG"]
    assert all(c.headers["Authorization"] == f"Bearer {slack.slack.bot_token}" for c in downloads)
    assert images_seen(slack) == [[PHOTO]] * slack.model_calls(), "the describe call and every call of the turn"
    hits = await slack.app.services.admin.search(slack.agent(ANN), fingerprint(PHOTO), Scope.PRIVATE)
    [hit] = [h for h in hits if h.text == "a walk today"]
    assert hit.attachment_text is not None
    assert f"forest.png: {describe_image('forest.png', PHOTO)}" in hit.attachment_text
    _, response_url = await slack.command(ANN, f"search {fingerprint(PHOTO)}", channel=f"D{ANN}")
    await slack.settle()
    [answer] = slack.responses(response_url)
    assert "(attached: forest.png: A picture called forest.png" in all_text(answer["blocks"])
    _, response_url = await slack.command(ANN, f"search {fingerprint(PHOTO)}")  # in a channel: a DM's image is private
    await slack.settle()
    [answer] = slack.responses(response_url)
    assert "attached" not in all_text(answer["blocks"]) and "a walk today" not in all_text(answer["blocks"])


async def test_an_image_with_a_mention_in_a_channel_is_shown_and_answered_in_the_thread(make_slack: MakeSlack) -> None:
    slack = await make_slack(MEMBOT_VISION="on")
    image = slack.slack.add_file("F0IMG", "whiteboard.png", PHOTO, mimetype="image/png")
    said = slack.channel_message(ANN, "C0GENERAL", f"<@{BOT}>", subtype="file_share", files=[image])
    await slack.send_event(said)
    await slack.settle()
    [answer] = slack.slack.calls_to("chat.postMessage")
    assert "[image attached: whiteboard.png]" in answer.params["text"] and answer.params["thread_ts"] == said["ts"]
    assert images_seen(slack)[-1] == [PHOTO]


async def test_without_vision_an_image_is_not_fetched_and_the_user_is_told(slack: SlackHarness) -> None:
    image = slack.slack.add_file("F0IMG", "forest.png", PHOTO, mimetype="image/png")
    await slack.send_event(slack.dm(ANN, "", subtype="file_share", files=[image]))
    await slack.settle()
    notice, answer = texts(slack.slack.calls_to("chat.postMessage"))
    assert notice == "I can't look at images with the current model, so I didn't see forest.png."
    assert "the current model cannot see images" in answer
    assert slack.slack.calls_to("files.info") == [] and slack.slack.calls_to("download") == []
    assert images_seen(slack) == [[]]
