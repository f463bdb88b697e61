"""The outage journal on disk, and the runtime bridging an outage in-process (one notice per conversation and
outage, answers in order, each to the sink its message came with)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from adapters.console import console_message
from adapters.keys import person_of
from bot.app import open_app
from bot.core.events import Attachment, ChannelMessage, OutboundReply, ReplyAddress, ReplyKind, utc_now
from bot.runtime.outage import STORE_DOWN_NOTICE
from memory.journal import FileJournal, message_from_json, message_to_json
from tests.faults.conftest import OwnedRedis
from tests.scenario import RecordingSink, eventually, settings_for, slack_said
from tests.standins.llm_server import ScriptedLLMServer


def test_a_message_round_trips_through_json() -> None:
    message = slack_said("hi there", dm=False)
    message = type(message)(
        **{
            **message.__dict__,
            "attachments": (Attachment("notes.md", "text/markdown", 5, None, b"hello"),),
            "recent_context": (ChannelMessage("Bob", "earlier", utc_now()),),
        }
    )
    assert message_from_json(json.loads(json.dumps(message_to_json(message)))) == message


async def test_pending_entries_of_a_dead_process_are_adopted_in_order_and_a_torn_line_is_skipped(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "journal"
    first = FileJournal.open(directory)
    ids = [await first.append(console_message("ann", text)) for text in ("one", "two", "three")]
    await first.done(ids[0])
    other = FileJournal.open(directory)
    assert other.pending_count() == 0, "a live process's journal is not adopted"
    other.close()
    with first.path.open("ab") as file:
        file.write(b'{"op": "add", "id": "torn", "mess')  # killed in the middle of a write
    first.close()  # the process dies: its file (with pending entries) stays
    assert first.path.exists()

    second = FileJournal.open(directory)
    assert [entry.message.text for entry in await second.pending()] == ["two", "three"]
    assert not first.path.exists(), "adopted entries live in the new process's file"
    for entry in await second.pending():
        await second.done(entry.id)
    assert second.path.read_bytes() == b"", "emptied once everything is answered"
    second.close()
    assert list(directory.glob("*.jsonl")) == [], "an empty journal is removed when its process stops"


async def test_an_outage_is_told_once_per_conversation_and_answered_in_order(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, owned_redis: OwnedRedis
) -> None:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, REDIS_URL=owned_redis.url)
    settings = settings.model_copy(update={"redis_retry_seconds": 0.5})
    async with open_app(settings) as app:
        runtime = app.runtime
        assert runtime is not None and runtime.outage is not None
        ann, bob = RecordingSink(), RecordingSink()
        await runtime.handle(console_message("ann", "hello"), ann)
        await asyncio.to_thread(owned_redis.stop)
        for text in ("one", "two"):
            assert await runtime.handle(console_message("ann", text), ann) is None
        await runtime.handle(console_message("bob", "hi"), bob)
        assert ann.notices == [STORE_DOWN_NOTICE] and bob.notices == [STORE_DOWN_NOTICE]
        assert ann.messages == ["echo: hello"] and bob.messages == []
        await asyncio.to_thread(owned_redis.start)
        await asyncio.wait_for(runtime.outage.wait_replayed(), 60)
        assert ann.messages == ["echo: hello", "echo: one", "echo: two"] and bob.messages == ["echo: hi"]

        # a new outage is a new notice
        await asyncio.to_thread(owned_redis.stop)
        await runtime.handle(console_message("ann", "three"), ann)
        assert ann.notices == [STORE_DOWN_NOTICE, STORE_DOWN_NOTICE]
        await asyncio.to_thread(owned_redis.start)
        await eventually(lambda: ann.messages[-1:] == ["echo: three"], what="the answer after the second outage")


class RecordingSlack:
    """The platform side of a ``PlatformAdapter``: what its address-based send delivered (no Slack involved)."""

    platform = "slack"

    def __init__(self) -> None:
        self.sent: list[tuple[ReplyAddress, str]] = []

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def send_direct(self, address: ReplyAddress, text: str) -> None:
        self.sent.append((address, text))


async def test_a_stopped_process_s_platform_messages_are_answered_at_start_through_the_adapter(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    message = slack_said("are you there?", dm=True)
    left = FileJournal.open(data_dir / "journal")
    await left.append(message)
    left.close()  # the process stopped with the message only in its journal

    settings = settings_for(llm, "anthropic", key_prefix, data_dir)
    slack = RecordingSlack()
    async with open_app(settings) as app:
        assert await app.resume_journal([slack]) == 1
        assert app.runtime is not None and app.runtime.outage is not None
        await asyncio.wait_for(app.runtime.outage.wait_replayed(), 60)
    assert slack.sent == [(message.address, "echo: are you there?")]
    assert list((data_dir / "journal").glob("*.jsonl")) == []


async def test_an_outage_after_the_answer_was_sent_is_not_answered_twice(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, owned_redis: OwnedRedis
) -> None:
    """Redis dies right after the reply reached the user (before the reply is stored): the message is not journaled
    (its replay would answer a second time), and the user, who has the answer, gets no notice either."""
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, REDIS_URL=owned_redis.url)
    settings = settings.model_copy(update={"redis_retry_seconds": 0.5})

    class RedisDiesOnAnswer(RecordingSink):
        async def send(self, reply: OutboundReply) -> None:
            await super().send(reply)
            if reply.kind is ReplyKind.MESSAGE:
                await asyncio.to_thread(owned_redis.stop)

    async with open_app(settings) as app:
        assert app.runtime is not None and app.runtime.outage is not None
        sink = RedisDiesOnAnswer()
        assert await app.runtime.handle(console_message("ida", "hello"), sink) is None
        assert sink.messages == ["echo: hello"] and sink.notices == []  # answered: no notice, no second answer
        assert not app.runtime.outage.backlogged
    assert all(path.stat().st_size == 0 for path in (data_dir / "journal").glob("*.jsonl"))


@pytest.mark.redis_aof  # the dedupe flag set before the outage is still there after it
async def test_platform_admission_lets_a_message_through_to_the_journal_during_an_outage(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, owned_redis: OwnedRedis
) -> None:
    """Discord and Slack check dedupe and rate limits in Redis before the runtime: during an outage those checks
    fail open (after one retry budget, then without asking Redis), so the message is journaled, not lost."""
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, REDIS_URL=owned_redis.url)
    settings = settings.model_copy(update={"redis_retry_seconds": 0.5})
    async with open_app(settings) as app:
        assert app.services is not None and app.runtime is not None and app.runtime.outage is not None
        throttle, sink = app.services.throttle, RecordingSink()
        message = slack_said("are you there?", dm=True)
        person = person_of(message.agent_key)
        assert await throttle.first_time(person, "event-1")
        await asyncio.to_thread(owned_redis.stop)
        assert await throttle.first_time(person, "event-2"), "fails open after the retry budget"
        started = asyncio.get_running_loop().time()
        assert await throttle.allow(person, 20)
        assert await throttle.check_in(person, ["event-3", "ts-3"], 20) == (True, True)
        await app.runtime.handle(message, sink)
        assert asyncio.get_running_loop().time() - started < 0.5, "the store is known down: no budget spent again"
        assert sink.notices == [STORE_DOWN_NOTICE] and sink.messages == []
        await asyncio.to_thread(owned_redis.start)
        await asyncio.wait_for(app.runtime.outage.wait_replayed(), 60)
        assert sink.messages == ["echo: are you there?"]
        assert not await throttle.first_time(person, "event-1"), "dedupe works again once Redis is back"
