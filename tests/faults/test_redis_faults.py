"""Redis faults as a user meets them: real `membot chat` processes on a redis-server the test owns (AOF, so a
restart keeps the data), restarted, paused, stopped for a while, and the membot process killed with messages in
its journal. Each test asserts what the user saw and compares `membot memory export` before and after."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.console import console_message
from bot.app import open_app
from bot.runtime.outage import STORE_DOWN_NOTICE
from tests.faults.conftest import OwnedRedis
from tests.ops.helpers import free_port
from tests.ops.test_endpoints import serving
from tests.scenario import RecordingSink, env_for, eventually, settings_for
from tests.standins.llm_server import ScriptedLLMServer

MEMBOT = [sys.executable, "-m", "bot"]
pytestmark = pytest.mark.redis_aof


@pytest.fixture
def env(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, owned_redis: OwnedRedis) -> dict[str, str]:
    settings = settings_for(
        llm,
        "anthropic",
        key_prefix,
        data_dir,
        REDIS_URL=owned_redis.url,
        MEMBOT_REDIS_RETRY_SECONDS=2,  # past this, a message is journaled (a restart takes well under it)
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    return {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}


class Chat:
    """A running `membot chat`: write lines, read its stdout lines (with a deadline), collect its stderr."""

    def __init__(self, env: dict[str, str], cwd: Path, user: str) -> None:
        self.process = subprocess.Popen(
            [*MEMBOT, "chat", "--user", user],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str | None] = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self._lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr.append), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Any, put: Any) -> None:
        for raw in iter(stream.readline, b""):
            put(raw.decode("utf-8", "replace").rstrip("\n"))
        put(None)  # end of stream

    def say(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()

    def read(self, within: float = 60.0) -> str:
        """The next stdout line (a safety-net deadline, not a timing assertion)."""
        try:
            line = self._lines.get(timeout=within)
        except queue.Empty:
            pytest.fail(f"no answer within {within}s; stderr:\n{self.stderr}")
        assert line is not None, f"membot exited; stderr:\n{self.stderr}"
        return line

    @property
    def stderr(self) -> str:
        return "\n".join(line for line in self._stderr if line is not None)

    def finish(self, within: float = 90.0) -> int:
        """Close stdin (end of input) and wait for the exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(within)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def close(self) -> None:
        """Kill it if it still runs, and release its pipes."""
        if self.process.poll() is None:
            self.kill()
        for pump in self._pumps:
            pump.join(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def start_chat(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], Chat]]:
    """Start `membot chat --user NAME` processes; each is killed (if still running) and closed afterwards."""
    chats: list[Chat] = []

    def start(user: str) -> Chat:
        chats.append(Chat(env, tmp_path, user))
        return chats[-1]

    yield start
    for chat in chats:
        chat.close()


def membot(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*MEMBOT, *args], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def export(env: dict[str, str], cwd: Path, agent: str) -> dict[str, Any]:
    result = membot(["memory", "export", agent], env, cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def said(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of every recall entry, oldest first: a user message is stamped when it was written, a reply
    when it was sent (so a journaled message keeps its place, and its late answer comes after it)."""
    entries = sorted(document["recall"], key=lambda item: item["timestamp"])
    return [(item["role"], item["text"]) for item in entries]


def kept(messages: tuple[str, ...]) -> list[tuple[str, str]]:
    """Each message and its echo, in any order (compared sorted)."""
    return sorted((role, text) for m in messages for role, text in (("user", m), ("assistant", f"echo: {m}")))


def journal_lines(data_dir: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted((data_dir / "journal").glob("*.jsonl")):
        lines.extend(json.loads(raw) for raw in path.read_text().splitlines() if raw.strip())
    return lines


def wait_until(check: Any, within: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        time.sleep(0.05)


def test_a_redis_restart_between_two_messages_is_invisible(
    env: dict[str, str], tmp_path: Path, owned_redis: OwnedRedis, start_chat: Callable[[str], Chat]
) -> None:
    first = membot(["chat", "--user", "alice"], env, tmp_path, b"my name is Alice\n")
    assert first.stdout.splitlines() == ["membot> Got it, I'll remember that."], first.stderr
    before = export(env, tmp_path, "console:alice")

    chat = start_chat("alice")
    chat.say("hello")
    assert chat.read() == "membot> echo: hello"
    owned_redis.restart()  # pooled connections are now dead; the next message must not notice
    chat.say("what is my name?")
    assert chat.read() == "membot> Your name is Alice."
    assert chat.finish() == 0, chat.stderr
    assert "Traceback" not in chat.stderr and STORE_DOWN_NOTICE not in chat.stderr

    after = export(env, tmp_path, "console:alice")
    assert after["core"] == before["core"]
    assert said(after) == [
        *said(before),
        ("user", "hello"),
        ("assistant", "echo: hello"),
        ("user", "what is my name?"),
        ("assistant", "Your name is Alice."),
    ]


def test_a_redis_paused_for_8s_only_delays_the_answer(
    env: dict[str, str], tmp_path: Path, owned_redis: OwnedRedis, start_chat: Callable[[str], Chat]
) -> None:
    chat = start_chat("paula")
    chat.say("hello")
    assert chat.read() == "membot> echo: hello"
    owned_redis.pause()
    resume = threading.Timer(8.0, owned_redis.resume)
    resume.start()
    try:
        started = time.monotonic()
        chat.say("still there?")
        assert chat.read() == "membot> echo: still there?"
        assert time.monotonic() - started >= 7.5, "answered while Redis was paused?"
    finally:
        resume.join()
    assert chat.finish() == 0, chat.stderr
    assert "Traceback" not in chat.stderr and STORE_DOWN_NOTICE not in chat.stderr
    after = export(env, tmp_path, "console:paula")
    assert said(after) == [
        ("user", "hello"),
        ("assistant", "echo: hello"),
        ("user", "still there?"),
        ("assistant", "echo: still there?"),
    ]


def test_messages_during_a_20s_outage_are_journaled_told_once_and_answered_in_order(
    env: dict[str, str],
    tmp_path: Path,
    data_dir: Path,
    owned_redis: OwnedRedis,
    start_chat: Callable[[str], Chat],
) -> None:
    chat = start_chat("olga")
    chat.say("one")
    assert chat.read() == "membot> echo: one"
    owned_redis.stop()
    down_at = time.monotonic()
    chat.say("two")
    chat.say("three")
    wait_until(lambda: sum(r["op"] == "add" for r in journal_lines(data_dir)) == 2, what="two journaled messages")
    assert chat.stderr.count(STORE_DOWN_NOTICE) == 1, chat.stderr  # told once for the outage
    time.sleep(max(0.0, 20.0 - (time.monotonic() - down_at)))  # Redis stays down ~20 s
    owned_redis.start()
    assert [chat.read(), chat.read()] == ["membot> echo: two", "membot> echo: three"]
    chat.say("four")
    assert chat.read() == "membot> echo: four"
    assert chat.finish() == 0, chat.stderr
    assert "Traceback" not in chat.stderr and chat.stderr.count(STORE_DOWN_NOTICE) == 1
    assert journal_lines(data_dir) == [], "the journal is emptied once every entry is answered"
    after = export(env, tmp_path, "console:olga")
    assert sorted(said(after)) == kept(("one", "two", "three", "four"))
    assert [text for role, text in said(after) if role == "user"] == ["one", "two", "three", "four"]


def test_journaled_messages_of_a_killed_process_are_answered_by_the_next_one(
    env: dict[str, str],
    tmp_path: Path,
    data_dir: Path,
    owned_redis: OwnedRedis,
    start_chat: Callable[[str], Chat],
) -> None:
    chat = start_chat("kim")
    chat.say("one")
    assert chat.read() == "membot> echo: one"
    owned_redis.stop()
    chat.say("two")
    chat.say("three")
    wait_until(lambda: sum(r["op"] == "add" for r in journal_lines(data_dir)) == 2, what="two journaled messages")
    assert STORE_DOWN_NOTICE in chat.stderr
    chat.kill()  # kill -9 with both messages only in the journal
    owned_redis.start()

    before = export(env, tmp_path, "console:kim")
    assert said(before) == [("user", "one"), ("assistant", "echo: one")]  # (exported once the chat is gone)

    following = membot(["chat", "--user", "kim"], env, tmp_path, b"four\n")
    assert following.returncode == 0, following.stderr
    assert following.stdout.splitlines() == ["membot> echo: two", "membot> echo: three", "membot> echo: four"]
    assert "answering 2 saved messages" in following.stderr and "Traceback" not in following.stderr
    assert journal_lines(data_dir) == []
    after = export(env, tmp_path, "console:kim")
    assert after["core"] == before["core"]
    assert sorted(said(after)) == kept(("one", "two", "three", "four"))
    assert [text for role, text in said(after) if role == "user"] == ["one", "two", "three", "four"]


async def test_healthz_reports_redis_down_then_recovers(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, owned_redis: OwnedRedis
) -> None:
    settings = settings_for(
        llm, "anthropic", key_prefix, data_dir, REDIS_URL=owned_redis.url, MEMBOT_HTTP_PORT=free_port()
    )
    async with open_app(settings) as app, serving(app) as base, aiohttp.ClientSession() as session:

        async def redis_health() -> tuple[int, dict[str, Any]]:
            async with session.get(f"{base}/healthz") as response:
                return response.status, (await response.json())["components"]["redis"]

        assert (await redis_health())[0] == 200
        await asyncio.to_thread(owned_redis.stop)
        status, redis = await redis_health()
        assert status == 503 and redis["ok"] is False and redis["detail"], redis
        await asyncio.to_thread(owned_redis.start)

        async def healthy() -> bool:
            return (await redis_health())[0] == 200

        await eventually(healthy, what="/healthz to report Redis back")
        assert app.runtime is not None
        sink = RecordingSink()
        await app.runtime.handle(console_message("hana", "hello"), sink)
        assert sink.messages == ["echo: hello"] and sink.notices == []
