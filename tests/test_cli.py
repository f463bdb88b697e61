"""The `membot` command as a user runs it: subprocesses with real Redis, embedded Qdrant and the stand-in model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import portalocker
import pytest
import redis as syncredis

from tests.scenario import env_for, settings_for
from tests.standins.llm_server import ScriptedLLMServer

MEMBOT = [sys.executable, "-m", "bot"]


@pytest.fixture
def env(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> dict[str, str]:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    return {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}


def membot(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*MEMBOT, *args], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120, check=False
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def test_a_fact_told_in_one_process_is_known_in_the_next(env: dict[str, str], tmp_path: Path) -> None:
    first = membot(["chat", "--user", "alice"], env, tmp_path, b"my name is Alice\n")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["membot> Got it, I'll remember that."]
    second = membot(["chat", "--user", "alice"], env, tmp_path, b"what is my name?\n")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["membot> Your name is Alice."]
    other = membot(["chat", "--user", "bob"], env, tmp_path, b"what is my name?\n")
    assert other.stdout.splitlines() == ["membot> I don't know your name yet."]


def test_piped_lines_are_messages_and_bad_bytes_are_reported(env: dict[str, str], tmp_path: Path) -> None:
    result = membot(["chat", "--user", "carol"], env, tmp_path, b"hello\n\xff\xfe broken\n\nbye")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "membot> echo: hello",
        "membot> echo: \ufffd\ufffd broken",
        "membot> echo: bye",
    ]
    assert "line 2 is not valid UTF-8" in result.stderr
    assert "empty" in result.stderr


def test_memory_show_export_reset(env: dict[str, str], tmp_path: Path) -> None:
    membot(["chat", "--user", "dora"], env, tmp_path, b"my name is Dora\nremember: Dora's cat is called Pixel\n")
    shown = membot(["memory", "show", "console:dora", "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert "Name: Dora" in view["core"]["human"]["value"]
    assert view["recall_count"] == 4 and view["archival_count"] == 1
    text = membot(["memory", "show", "console:dora"], env, tmp_path)
    assert "Name: Dora" in text.stdout and "archival notes" in text.stdout

    exported = membot(["memory", "export", "console:dora"], env, tmp_path)
    document = json.loads(exported.stdout)
    assert document["agent"] == "console:dora"
    assert any("Pixel" in item["text"] for item in document["archival"])
    assert len(document["recall"]) == 4

    refused = membot(["memory", "reset", "console:dora"], env, tmp_path)
    assert refused.returncode != 0 and "--yes" in refused.stderr
    reset = membot(["memory", "reset", "console:dora", "--yes", "--json"], env, tmp_path)
    assert reset.returncode == 0, reset.stderr
    gone = membot(["memory", "show", "console:dora"], env, tmp_path)  # says what a reset keeps, and how to erase it
    assert gone.returncode == 0, gone.stderr
    assert "No memory is stored for console:dora (it was reset or erased)" in gone.stdout
    assert "core version(s)" in gone.stdout and "membot memory erase console:dora --yes" in gone.stdout
    kept = json.loads(membot(["memory", "show", "console:dora", "--json"], env, tmp_path).stdout)
    assert kept["memory"] is None and kept["kept"]["core_versions"] == 3 and kept["kept"]["audit_entries"] == 4


@pytest.mark.parametrize(
    "command",
    [
        ["show"],
        ["export"],
        ["reset", "--yes"],
        ["forget", "--yes"],
        ["erase", "--yes"],
        ["history"],
        ["rollback", "--to", "1"],
        ["proactive", "on"],
        ["timezone"],
        ["reminders"],
    ],
)
def test_every_memory_command_refuses_an_unknown_agent(env: dict[str, str], tmp_path: Path, command: list[str]) -> None:
    name, *options = command
    args = ["memory", name, "console:nobody", *(["PIN"] if name == "forget" else []), *options]
    unknown = membot(args, env, tmp_path)
    assert unknown.returncode == 1, (unknown.stdout, unknown.stderr)
    assert "no memory is stored for console:nobody" in unknown.stderr and "Traceback" not in unknown.stderr
    assert unknown.stdout == ""


def test_unknown_and_invalid_agent_keys(env: dict[str, str], tmp_path: Path) -> None:
    unknown = membot(["memory", "show", "console:nobody"], env, tmp_path)
    assert unknown.returncode == 1
    assert "no memory is stored for console:nobody" in unknown.stderr and "Traceback" not in unknown.stderr
    invalid = membot(["memory", "show", "telegram:x"], env, tmp_path)
    assert invalid.returncode == 2 and "invalid agent key" in invalid.stderr


def test_chat_without_a_provider_names_the_variables(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    result = membot(["chat"], env, tmp_path, b"hi\n")
    assert result.returncode == 2
    assert "MEMBOT_LLM_PROVIDER" in result.stderr and "ANTHROPIC_API_KEY" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_redis_down_at_start_is_one_clear_message(env: dict[str, str], tmp_path: Path) -> None:
    down = {**env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = membot(["chat", "--user", "x"], down, tmp_path, b"hi\n")
    assert result.returncode == 1
    assert "Cannot reach Redis at redis://127.0.0.1:1/0" in result.stderr and "Traceback" not in result.stderr


def test_doctor_reports_each_check(env: dict[str, str], tmp_path: Path) -> None:
    result = membot(["doctor"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("language model", "redis", "qdrant", "embeddings", "recall outbox"):
        assert name in result.stdout


def test_memory_reindex_on_current_collections_has_nothing_to_do(env: dict[str, str], tmp_path: Path) -> None:
    membot(["chat", "--user", "gus"], env, tmp_path, b"hello\n")
    result = membot(["memory", "reindex"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Nothing to do" in result.stdout


def test_a_message_survives_the_process_being_killed_before_it_was_indexed(
    llm: ScriptedLLMServer, env: dict[str, str], tmp_path: Path, key_prefix: str
) -> None:
    """The reply does not wait for embedding; a kill before indexing loses nothing: the next process indexes it."""
    env = {**env, "MEMBOT_EMBEDDER": "openai", "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": llm.openai_base_url}
    llm.embeddings_down = True  # nothing can be indexed while the first process runs
    chat = subprocess.Popen(
        [*MEMBOT, "chat", "--user", "erin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tmp_path
    )
    try:
        assert chat.stdin is not None and chat.stdout is not None
        chat.stdin.write(b"my name is Erin\n")
        chat.stdin.flush()
        assert chat.stdout.readline().decode() == "membot> Got it, I'll remember that.\n"
        client = syncredis.Redis.from_url(env["REDIS_URL"])
        try:  # the reply is printed just before it is stored: wait for it (a safety net, not a timing assertion)
            deadline = time.monotonic() + 30
            while (pending := client.hget(f"{key_prefix}:outbox-pending:{{recall}}", "console:erin")) != b"2":
                assert time.monotonic() < deadline, f"pending: {pending!r}"
                time.sleep(0.02)
        finally:
            client.close()
        # the user's message and the reply are waiting in Redis, not indexed
    finally:
        chat.kill()
        chat.wait(timeout=30)
        for stream in (chat.stdin, chat.stdout):
            if stream is not None:
                stream.close()

    llm.embeddings_down = False
    exported = membot(["memory", "export", "console:erin"], env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    recalled = [item["text"] for item in json.loads(exported.stdout)["recall"]]
    assert sorted(recalled) == ["Got it, I'll remember that.", "my name is Erin"]


def test_memory_history_rollback_and_erase(env: dict[str, str], tmp_path: Path, data_dir: Path) -> None:
    membot(["chat", "--user", "hana"], env, tmp_path, b"my name is Hana\nmy name is Hanna\n")
    with (data_dir / "qdrant" / "edge.lock").open("r+") as held:  # as while `membot run` holds embedded Qdrant
        portalocker.lock(held, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        listed = membot(["memory", "history", "console:hana", "--json"], env, tmp_path)
        rolled = membot(["memory", "rollback", "console:hana", "--to", "2"], env, tmp_path)
        shown = membot(["memory", "show", "console:hana"], env, tmp_path)
        portalocker.unlock(held)
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert [(i["kind"], i["version"]) for i in items] == [("core_append", 3), ("core_append", 2), ("core_init", 1)]
    assert items[0]["changes"] == [{"label": "human", "removed": [], "added": ["[private] Name: Hanna"]}]
    assert items[0]["cause"].startswith("event:console:")
    assert rolled.returncode == 0, rolled.stderr
    assert "back to version 2 (now version 4)" in rolled.stdout and "Name: Hanna" not in rolled.stdout
    assert shown.returncode == 1 and "in use by another membot process" in shown.stderr, "show needs Qdrant"
    text = membot(["memory", "history", "console:hana", "--limit", "1"], env, tmp_path)
    assert "v4 core_rollback · to v2 by cli" in text.stdout and "- human: [private] Name: Hanna" in text.stdout
    missing = membot(["memory", "rollback", "console:hana", "--to", "40"], env, tmp_path)
    assert missing.returncode == 1 and "version 40 of console:hana is not kept; versions 1 to 4 are" in missing.stderr

    refused = membot(["memory", "erase", "console:hana"], env, tmp_path)
    assert refused.returncode != 0 and "--yes" in refused.stderr
    erased = membot(["memory", "erase", "console:hana", "--yes", "--json"], env, tmp_path)
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["removed"]["audit_entries"] == 4
    [record] = json.loads(membot(["memory", "history", "console:hana", "--json"], env, tmp_path).stdout)
    assert (record["kind"], record["cause"]) == ("erase", "cli")


def test_memory_forget_removes_the_words_everywhere(env: dict[str, str], tmp_path: Path) -> None:
    membot(["chat", "--user", "fred"], env, tmp_path, b"my name is Fred\nmy bank PIN is 4711\n")
    refused = membot(["memory", "forget", "console:fred", "bank PIN"], env, tmp_path)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    forgot = membot(["memory", "forget", "console:fred", "bank PIN", "--yes", "--json"], env, tmp_path)
    assert forgot.returncode == 0, forgot.stderr
    assert json.loads(forgot.stdout)["removed"] >= 1
    exported = membot(["memory", "export", "console:fred"], env, tmp_path).stdout
    assert "4711" not in exported and "Name: Fred" in exported
    nothing = membot(["memory", "forget", "console:fred", "bank PIN", "--yes"], env, tmp_path)
    assert nothing.returncode == 0 and "nothing of console:fred matches" in nothing.stdout


def test_json_logs_are_one_object_per_line_and_an_unknown_format_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    logged = {**env, "MEMBOT_LOG_LEVEL": "INFO", "MEMBOT_LOG_FORMAT": "json"}
    result = membot(["chat", "--user", "jay"], logged, tmp_path, b"hello there\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(r["event"] == "turn done" and r["agent"] == "console:jay" for r in records), result.stderr
    assert all({"event", "level", "timestamp", "logger"} <= r.keys() for r in records)
    assert "hello there" not in result.stderr  # message bodies never at INFO

    refused = membot(["chat", "--user", "jay"], {**env, "MEMBOT_LOG_FORMAT": "xml"}, tmp_path, b"hi\n")
    assert refused.returncode == 2 and "MEMBOT_LOG_FORMAT" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


def test_membot_run_answers_piped_lines_and_goes_on_when_its_http_port_is_busy(
    env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = membot(["run", "--user", "pia"], {**env, "MEMBOT_HTTP_PORT": str(port)}, tmp_path, b"hi there\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "membot> echo: hi there"
    assert f"Cannot serve /healthz and /metrics on 127.0.0.1:{port}" in result.stderr
    assert "Chatting on without them" in result.stderr and "Traceback" not in result.stderr


def test_version_agents_list_and_memory_search(env: dict[str, str], tmp_path: Path) -> None:
    version = membot(["--version"], env, tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("membot "), version.stderr

    lines = b"my bike is a green Gazelle\nremember: Vic rides to work\n"
    said = membot(["chat", "--user", "vic"], env, tmp_path, lines)
    assert said.returncode == 0, said.stderr

    listed = membot(["agents", "list", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    [vic] = [row for row in json.loads(listed.stdout) if row["agent"] == "console:vic"]
    assert vic["recall"] == 4 and vic["archival"] == 1
    table = membot(["agents", "list"], env, tmp_path)
    assert "console:vic" in table.stdout

    found = membot(["memory", "search", "console:vic", "green bike", "--json"], env, tmp_path)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    recalled = {hit["text"] for hit in hits if hit["kind"] == "recall"}
    assert {"my bike is a green Gazelle", "echo: my bike is a green Gazelle"} <= recalled
    assert any(hit["kind"] == "archival" and hit["text"] == "Vic rides to work" for hit in hits)
    shown = membot(["memory", "search", "console:vic", "Gazelle"], env, tmp_path)
    assert "my bike is a green Gazelle" in shown.stdout

    unknown = membot(["memory", "search", "console:nobody", "bike"], env, tmp_path)
    assert unknown.returncode == 1 and "no memory is stored for console:nobody" in unknown.stderr
    empty = membot(["memory", "search", "console:vic", "  "], env, tmp_path)
    assert empty.returncode == 2 and "give some words" in empty.stderr
