"""Disk faults with a real `membot chat`: a data disk that fills up mid-conversation, a read-only or invalid data
directory at start. The data directory is a small tmpfs the test mounts (tests/faults/mounts.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue

import pytest
import redis as syncredis

from tests.faults.mounts import fill_up, tmpfs
from tests.scenario import env_for, settings_for
from tests.standins.llm_server import ScriptedLLMServer

MEMBOT = [sys.executable, "-m", "bot"]
NOTE = "the spare key is under the blue pot"


def chat_env(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, **extra: str) -> dict[str, str]:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    return {**base, **env_for(settings), "HF_HUB_OFFLINE": "1", **extra}


def membot(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*MEMBOT, *args], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120, check=False
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


class Chat:
    """A `membot chat` process fed line by line; its stdout lines are read by a thread."""

    def __init__(self, env: dict[str, str], cwd: Path, user: str, stderr: Path) -> None:
        self._stderr = stderr.open("wb")
        self.process = subprocess.Popen(
            [*MEMBOT, "chat", "--user", user], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, cwd=cwd,
        )  # fmt: skip
        self.lines: Queue[str] = Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.put(raw.decode().rstrip("\n"))

    def say(self, text: str, within: float = 60.0) -> str:
        """Send one line; return the reply (the stand-in model answers each message with one, maybe multi-line)."""
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()
        try:
            reply = [self.lines.get(timeout=within)]
        except Empty:
            raise AssertionError(f"no answer to {text!r} within {within} s") from None
        with contextlib.suppress(Empty):
            while True:  # continuation lines are printed together with the first one
                reply.append(self.lines.get(timeout=0.5))
        return "\n".join(reply)

    def leave(self, within: float = 60.0) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=within)
        self._stderr.close()
        return code

    def kill(self) -> None:
        """Make sure the process is gone and every pipe closed (after ``leave`` it only closes)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._stderr.close()


@pytest.fixture
def redis_sync(redis_url: str) -> Iterator[syncredis.Redis]:
    client = syncredis.Redis.from_url(redis_url)
    yield client
    client.close()


def wait_for(check, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_disk_that_fills_up_mid_conversation_loses_nothing(
    llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path, redis_sync: syncredis.Redis
) -> None:
    data = tmp_path / "data"
    pending_key = f"{key_prefix}:outbox-pending:{{recall}}"

    def pending() -> int:
        return int(redis_sync.hget(pending_key, "console:dana") or 0)

    with tmpfs(data, "512m"):  # Qdrant Edge on tmpfs: 25-100 MB (its files are not sparse there), 64 MB kept free
        env = chat_env(llm, key_prefix, data)
        stderr = tmp_path / "stderr.txt"
        chat = Chat(env, tmp_path, "dana", stderr)
        said: list[str] = []
        try:
            said.append(chat.say("hello"))
            wait_for(lambda: pending() == 0, 60, "the first messages to be indexed")

            filler = fill_up(data)  # the data disk is full from here on
            said.append(chat.say(f"remember: {NOTE}"))
            said.append(chat.say("are you still there?"))
            wait_for(lambda: pending() == 4, 30, "both turns to be stored in the outbox")
            started = time.monotonic()
            said.append(chat.say("search: hello"))  # the indexer backs off: the search does not wait for it
            search_seconds = time.monotonic() - started
            assert pending() >= 5  # nothing of it could be indexed: it all waits in Redis

            filler.unlink()  # room again: the indexer's next try takes everything
            wait_for(lambda: pending() == 0, 90, "the waiting messages to be indexed after the disk had room")
            said.append(chat.say(f"remember: {NOTE}"))
            assert chat.leave() == 0
        finally:
            chat.kill()
        exported = membot(["memory", "export", "console:dana"], env, tmp_path)

    assert said[0] == "membot> echo: hello"
    assert said[1].startswith("membot> That failed:") and "the data disk is full" in said[1]  # a tool error
    assert said[2] == "membot> echo: are you still there?"  # the next message is answered
    assert said[3].startswith("membot> Found: Showing messages") and "hello" in said[3]
    assert search_seconds < 5, search_seconds  # vs a 10 s wait for catch-up before
    assert said[4] == "membot> Got it, I'll remember that."
    log = stderr.read_text()
    assert "Traceback" not in log
    assert "the data disk is full" in log and "recall indexing works again" in log
    assert log.count("recall indexing failed") <= 12, log  # one warning per backoff step, not a flood

    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    user = ["hello", f"remember: {NOTE}", "are you still there?", "search: hello", f"remember: {NOTE}"]
    replies = [reply.removeprefix("membot> ").replace("\n        ", "\n") for reply in said]
    recall = sorted(item["text"] for item in document["recall"])
    assert recall == sorted(user + replies)  # every message of the conversation, each once
    assert [item["text"] for item in document["archival"]] == [NOTE]  # stored when there was room


@pytest.mark.parametrize("command", [["chat", "--user", "x"], ["run"], ["memory", "export", "console:x"]])
def test_a_read_only_data_dir_is_one_line(
    llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path, command: list[str]
) -> None:
    data = tmp_path / "data"
    with tmpfs(data, "1m", read_only=True):
        result = membot(command, chat_env(llm, key_prefix, data), tmp_path, b"hi\n")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert str(data) in line and "Read-only file system" in line and "remount it read-write" in line


def test_doctor_names_a_read_only_data_dir(llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tmpfs(data, "1m", read_only=True):
        result = membot(["doctor"], chat_env(llm, key_prefix, data), tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if "data directory" in line]
    assert line.startswith("FAIL") and str(data) in line and "read-only" in line


@pytest.mark.parametrize("command", [["chat", "--user", "x"], ["run"], ["doctor"]])
def test_a_data_dir_that_is_a_file_is_one_line(
    llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path, command: list[str]
) -> None:
    data = tmp_path / "not-a-dir"
    data.write_text("something else\n")
    result = membot(command, chat_env(llm, key_prefix, data), tmp_path, b"hi\n")
    assert result.returncode == (1 if command == ["doctor"] else 2)
    output = result.stdout if command == ["doctor"] else result.stderr
    [line] = [line for line in output.strip().splitlines() if "MEMBOT_DATA_DIR" in line]
    assert str(data) in line and "is not a directory" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert data.read_text() == "something else\n"  # left as it was


def test_a_data_dir_under_a_file_cannot_be_created(llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    data = tmp_path / "a-file" / "data"
    result = membot(["chat", "--user", "x"], chat_env(llm, key_prefix, data), tmp_path, b"hi\n")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert str(data) in line and "cannot be created" in line and "MEMBOT_DATA_DIR" in line


def test_a_full_data_disk_at_start_is_one_line(llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with tmpfs(data, "1m"):
        fill_up(data)
        result = membot(["chat", "--user", "x"], chat_env(llm, key_prefix, data), tmp_path, b"hi\n")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert str(data) in line and "No space left on device" in line and "free some space" in line


ADMIN_COMMANDS = {
    "erase": ["memory", "erase", "console:xu", "--yes"],
    "reset": ["memory", "reset", "console:xu", "--yes"],
    "forget": ["memory", "forget", "console:xu", "spare key", "--yes"],
}


@pytest.mark.parametrize("room", [0, 64 * 1024], ids=["full", "nearly-full"])
@pytest.mark.parametrize("command", sorted(ADMIN_COMMANDS))
def test_memory_admin_on_a_full_disk_is_one_line_and_nothing_is_reported_done(
    llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path, command: str, room: int
) -> None:
    """`memory erase/reset/forget` with embedded Qdrant on a full disk (also one with a little room, so the start
    check passes and the store's SQLite write fails): one line, a non-zero exit; after freeing space the same
    command finishes and its effect is there."""
    data = tmp_path / "data"
    with tmpfs(data, "512m"):  # Qdrant Edge on tmpfs: 25-100 MB (its files are not sparse there), 64 MB kept free
        env = chat_env(llm, key_prefix, data)
        told = membot(["chat", "--user", "xu"], env, tmp_path, f"hello\nremember: {NOTE}\n".encode())
        assert told.returncode == 0, told.stderr
        before = json.loads(membot(["memory", "export", "console:xu"], env, tmp_path).stdout)
        filler = fill_up(data)
        os.truncate(filler, max(0, filler.stat().st_size - room))

        failed = membot(ADMIN_COMMANDS[command], env, tmp_path)
        filler.unlink()
        assert failed.returncode != 0
        assert "Traceback" not in failed.stderr and failed.stdout == "", "nothing is reported as done"
        [line] = failed.stderr.strip().splitlines()
        assert str(data) in line and ("No space left on device" in line or "disk" in line), line

        after = json.loads(membot(["memory", "export", "console:xu"], env, tmp_path).stdout)
        assert after["archival"] == before["archival"], "a command that did not finish did not half-remove notes"
        done = membot(ADMIN_COMMANDS[command], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith({"erase": "erased", "reset": "cleared", "forget": "forgot"}[command])
