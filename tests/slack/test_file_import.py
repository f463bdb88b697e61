"""Files shared in a DM land in the sender's archival memory, with their progress in one status message."""

from __future__ import annotations

from bot.core.events import Scope
from tests.slack.conftest import ANN, BOB
from tests.slack.harness import BOT, SlackHarness, texts
from tests.test_import import make_pdf

NOTES = (
    b"# Trip notes\n\nAnn's favourite city is Lisbon; she goes every spring.\n\n"
    b"She is allergic to peanuts, so restaurants must be checked first.\n"
)


async def test_a_markdown_file_shared_in_a_dm_is_imported_into_archival_memory(slack: SlackHarness) -> None:
    file = slack.slack.add_file("F0NOTES", "notes.md", NOTES, mimetype="text/markdown")
    await slack.send_event(slack.dm(ANN, "", subtype="file_share", files=[file]))
    await slack.settle()
    download = slack.slack.calls_to("download")
    assert len(download) == 1 and download[0].headers["Authorization"] == f"Bearer {slack.slack.bot_token}"
    assert slack.slack.calls_to("files.info")[0].params["file"] == "F0NOTES"
    notice = final_status(slack, f"D{ANN}")
    assert "Imported `notes.md` into my archival memory" in notice
    assert slack.model_calls() == 0  # a file alone is not a message to answer
    hits = await slack.app.services.admin.search(slack.agent(ANN), "Lisbon every spring", Scope.PRIVATE)
    assert any("Lisbon" in hit.text for hit in hits)
    assert (await slack.app.services.admin.show(slack.agent(ANN))).archival_count >= 1
    # ... into Ann's memory only
    bob = await slack.app.stores.archival.count(slack.agent(BOB))
    assert bob == 0


async def test_sharing_the_same_file_again_reports_duplicates_and_a_comment_is_answered(slack: SlackHarness) -> None:
    file = slack.slack.add_file("F0NOTES", "notes.txt", NOTES)
    await slack.send_event(slack.dm(ANN, "", subtype="file_share", files=[file]))
    await slack.settle()
    await slack.send_event(slack.dm(ANN, "here it is again", subtype="file_share", files=[file]))
    await slack.settle()
    posted = texts(slack.slack.calls_to("chat.postMessage"))
    assert posted == ["Importing `notes.txt`…", "Importing `notes.txt`…", "echo: here it is again"]
    [_, second, _] = slack.slack.calls_to("chat.postMessage")
    [*_, final] = slack.slack.updates(f"D{ANN}", second.response["ts"])
    assert "0 of 1 passages stored (1 I already had)" in final["text"]


async def test_files_that_cannot_be_imported_are_explained(slack: SlackHarness) -> None:
    song = slack.slack.add_file("F0MP3", "song.mp3", b"ID3....", mimetype="audio/mpeg")
    big = {**slack.slack.add_file("F0BIG", "big.txt", b"x"), "size": 25_000_000}
    binary = slack.slack.add_file("F0BIN", "latin1.txt", "café".encode("latin-1"))
    pdf = slack.slack.add_file("F0PDF", "manual.pdf", make_pdf(["The boiler is in the cellar."]), "application/pdf")
    await slack.send_event(slack.dm(ANN, "", subtype="file_share", files=[song, big, binary, pdf]))
    await slack.settle()
    notice = final_status(slack, f"D{ANN}")
    assert "PDF and Word (.docx) files" in notice and "`song.mp3`" in notice
    assert "`big.txt` is 25.0 MB" in notice
    assert "I couldn't import `latin1.txt`: it is not UTF-8 text" in notice
    assert "Imported `manual.pdf` into my archival memory: 1 of 1 passages stored" in notice
    assert [c.params["file_id"] for c in slack.slack.calls_to("download")] == ["F0BIN", "F0PDF"]


def final_status(slack: SlackHarness, channel: str) -> str:
    """The import's one status message, as its last chat.update left it."""
    [status] = slack.slack.calls_to("chat.postMessage")
    updates = slack.slack.updates(channel, status.response["ts"])
    return str(updates[-1]["text"] if updates else status.params["text"])


async def test_files_shared_in_a_channel_are_not_imported(slack: SlackHarness) -> None:
    file = slack.slack.add_file("F0NOTES", "notes.md", NOTES)
    shared = slack.channel_message(ANN, "C0GENERAL", f"<@{BOT}> look at this", subtype="file_share", files=[file])
    await slack.send_event(shared)
    await slack.settle()
    assert slack.slack.calls_to("files.info") == []
    assert texts(slack.slack.calls_to("chat.postMessage")) == ["echo: look at this"]
