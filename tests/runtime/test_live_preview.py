"""The runtime's live replies (bot/runtime/live.py) through the real app and the streaming LLM stand-in, with a sink
that records what a platform would show: previews grow by prefixes, the reply finishes them exactly, a turn that
fails never leaves a half reply, and the outage journal counts only finished replies as answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from adapters.console import console_message
from bot.app import open_app
from bot.core.events import OutboundReply, ReplyKind
from bot.runtime.live import TrackedLiveSink, ready_to_show
from bot.runtime.runtime import TURN_TIMEOUT_NOTICE
from tests.scenario import settings_for
from tests.standins.brain import LONG_ANSWER, Brain
from tests.standins.llm_server import ScriptedLLMServer, StreamPlan

SLOW = StreamPlan(chunk=20, delay=0.012)


class RecordingLiveSink:
    """A sink that can show replies as they grow, recording every step as ``(kind, reply number, text)``."""

    live_interval = 0.3

    def __init__(self) -> None:
        self.log: list[tuple[str, int, str]] = []
        self._made = 0

    async def send(self, reply: OutboundReply) -> None:
        self.log.append(("send" if reply.kind is ReplyKind.MESSAGE else "notice", -1, reply.text))

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        yield

    def live_reply(self) -> RecordingLiveReply:
        self._made += 1
        return RecordingLiveReply(self, self._made)

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.log]


class RecordingLiveReply:
    def __init__(self, sink: RecordingLiveSink, number: int) -> None:
        self._sink = sink
        self._number = number

    async def show(self, text: str) -> None:
        self._sink.log.append(("show", self._number, text))

    async def finish(self, reply: OutboundReply) -> None:
        self._sink.log.append(("finish", self._number, reply.text))

    async def discard(self) -> None:
        self._sink.log.append(("discard", self._number, ""))


async def test_a_long_reply_is_shown_by_prefixes_then_finished_exactly(
    llm: ScriptedLLMServer, brain: Brain, key_prefix: str, data_dir: Path
) -> None:
    brain.stream = SLOW
    sink = RecordingLiveSink()
    async with open_app(settings_for(llm, "anthropic", key_prefix, data_dir)) as app:
        report = await app.runtime.handle(console_message("lia", "long answer please"), sink)

    assert report is not None and report.messages_sent == 1
    shows = [text for kind, _, text in sink.log if kind == "show"]
    assert len(shows) >= 3 and all(LONG_ANSWER.startswith(text) for text in shows)
    assert all(ready_to_show(text) for text in shows)
    assert sink.log[-1] == ("finish", 1, LONG_ANSWER)
    assert "send" not in sink.kinds() and "discard" not in sink.kinds()


async def test_a_short_reply_is_sent_whole(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    sink = RecordingLiveSink()
    async with open_app(settings_for(llm, "openai", key_prefix, data_dir)) as app:
        await app.runtime.handle(console_message("lia", "hello there, how are you doing today?"), sink)
    assert sink.log == [("send", -1, "echo: hello there, how are you doing today?")]
    assert llm.streamed == 1  # streamed, but complete before it was worth showing


@pytest.mark.parametrize("stream", ["off"])
async def test_streaming_off_sends_replies_whole(
    llm: ScriptedLLMServer, brain: Brain, key_prefix: str, data_dir: Path, stream: str
) -> None:
    brain.stream = SLOW
    sink = RecordingLiveSink()
    async with open_app(settings_for(llm, "openai", key_prefix, data_dir, MEMBOT_STREAM=stream)) as app:
        await app.runtime.handle(console_message("lia", "long answer please"), sink)
    assert sink.log == [("send", -1, LONG_ANSWER)] and llm.streamed == 0


async def test_a_turn_that_times_out_mid_stream_leaves_no_half_reply(
    llm: ScriptedLLMServer, brain: Brain, key_prefix: str, data_dir: Path
) -> None:
    brain.stream = StreamPlan(chunk=20, delay=0.02)  # about 6 s for the whole answer
    sink = RecordingLiveSink()
    settings = settings_for(llm, "openai", key_prefix, data_dir, MEMBOT_TURN_TIMEOUT=2.5)
    async with open_app(settings) as app:
        await app.runtime.handle(console_message("lia", "long answer please"), sink)

    assert "show" in sink.kinds()
    assert sink.kinds()[-2:] == ["discard", "notice"] and sink.log[-1][2] == TURN_TIMEOUT_NOTICE
    assert "finish" not in sink.kinds()


async def test_the_outage_journal_counts_a_finished_reply_not_a_preview() -> None:
    inner = RecordingLiveSink()
    tracked = TrackedLiveSink(inner)
    live = tracked.live_reply()
    await live.show("The beginning of an answer.")
    assert not tracked.replied  # a preview is not an answer: a replay would still answer
    await live.finish(OutboundReply("The whole answer.", ReplyKind.MESSAGE))
    assert tracked.replied and tracked.live_interval == inner.live_interval
