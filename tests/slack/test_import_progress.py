"""A file shared in a DM is imported with its progress in one message, edited with chat.update.

Embeddings go to the stand-in's OpenAI embeddings endpoint, each answered after 0.1 s (about what the real API
takes), so a Word file of some 40 passages takes a few seconds and the status is edited several times.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from bot.core.events import Scope
from tests.slack.conftest import ANN, MakeSlack, llm, make_slack  # noqa: F401  (fixtures)
from tests.slack.harness import SlackHarness, texts
from tests.standins.slack_api import ApiCall
from tests.test_import import make_docx

DM = f"D{ANN}"
TOPICS = ["garden", "boiler", "bicycle", "piano", "roof", "car", "kitchen", "library", "attic", "garage"]


def paragraphs(count: int) -> list[str]:
    """Paragraphs of about 330 characters: three make a passage of about 1,000."""
    return [
        f"Paragraph {n} is about the {TOPICS[n % 10]} (item {n * 7 + 3}): "
        + " ".join(f"{TOPICS[(n + k) % 10]}{n}x{k}" for k in range(25))
        for n in range(count)
    ]


async def share_docx(tmp_path: Path, make_slack: MakeSlack) -> SlackHarness:  # noqa: F811
    slack = await make_slack(MEMBOT_EMBEDDER="openai")
    slack.llm.embedding_delay = 0.1
    make_docx(tmp_path / "notes.docx", paragraphs(120))
    kind = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    file = slack.slack.add_file("F0DOCX", "notes.docx", (tmp_path / "notes.docx").read_bytes(), kind)
    await slack.send_event(slack.dm(ANN, "", subtype="file_share", files=[file]))
    return slack


def status_of(slack: SlackHarness) -> ApiCall:
    [status] = slack.slack.calls_to("chat.postMessage")
    return status


def counts(updates: list[dict[str, object]]) -> list[tuple[int, int]]:
    found = [re.fullmatch(r"Importing `notes\.docx`… (\d+) of (\d+) passages", str(u["text"])) for u in updates]
    return [(int(m.group(1)), int(m.group(2))) for m in found if m]


async def test_a_word_file_import_edits_one_message_with_its_progress(
    tmp_path: Path,
    make_slack: MakeSlack,  # noqa: F811
) -> None:
    slack = await share_docx(tmp_path, make_slack)
    await slack.settle()
    status = status_of(slack)
    assert status.params["text"] == "Importing `notes.docx`…"
    updates = [c for c in slack.slack.calls_to("chat.update") if c.params["ts"] == status.response["ts"]]
    progress = counts([u.params for u in updates[:-1]])
    assert len(progress) == len(updates) - 1 >= 3, texts(updates)
    [total] = {total for _, total in progress}
    assert total >= 35 and [done for done, _ in progress] == sorted(done for done, _ in progress)
    final = updates[-1].params["text"]
    assert final == f"Imported `notes.docx` into my archival memory: {total} of {total} passages stored."
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(updates)]
    assert min(gaps) > 0.9, f"at most about one chat.update a second: {gaps}"
    assert slack.slack.channels[DM][-1]["text"] == final, "Slack shows the result in the status message"
    assert await slack.app.stores.archival.count(slack.agent(ANN)) == total
    hits = await slack.app.services.admin.search(slack.agent(ANN), "piano item 59", Scope.PRIVATE)
    assert any("notes.docx" in hit.text for hit in hits)


async def test_a_rate_limited_edit_skips_progress_and_the_result_still_lands_in_the_message(
    tmp_path: Path,
    make_slack: MakeSlack,  # noqa: F811
) -> None:
    slack = await share_docx(tmp_path, make_slack)
    await slack.slack.wait_for(lambda: slack.slack.calls_to("chat.update"))
    slack.slack.ratelimit("chat.update")  # Slack answers the next one with 429 and Retry-After
    await slack.settle()
    status = status_of(slack)
    updates = slack.slack.calls_to("chat.update")
    assert [u.response for u in updates[1:-1]] == [None] * (len(updates) - 2), "no edits after the refused one"
    assert "into my archival memory" in updates[-1].params["text"] and updates[-1].response is not None
    assert len(slack.slack.calls_to("chat.postMessage")) == 1, "the result is in the status message"
    assert slack.slack.channels[DM][-1]["ts"] == status.response["ts"]


async def test_a_deleted_status_message_gets_the_result_in_a_new_message(
    tmp_path: Path,
    make_slack: MakeSlack,  # noqa: F811
) -> None:
    slack = await share_docx(tmp_path, make_slack)
    await slack.slack.wait_for(lambda: slack.slack.calls_to("chat.postMessage"))
    status = status_of(slack)
    slack.slack.delete_message(DM, status.response["ts"])  # the user deletes it
    await slack.settle()
    first, result = slack.slack.calls_to("chat.postMessage")
    assert first is status
    assert re.fullmatch(
        r"Imported `notes\.docx` into my archival memory: (\d+) of \1 passages stored\.", result.params["text"]
    )
    assert {u.response["error"] for u in slack.slack.calls_to("chat.update")} == {"message_not_found"}
    assert await slack.app.stores.archival.count(slack.agent(ANN)) >= 35, "the import went on"
