"""Stored items that do not parse: garbage written into the real Redis keys, then the real `membot` CLI.

Each unreadable item is moved to the agent's quarantine (audited), `memory show` counts it, `memory export`
includes it, `memory reset` removes it, and chat keeps answering meanwhile.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import redis as syncredis

from bot.core.events import AgentKey
from memory.redis.keys import RedisKeys
from tests.conftest import REDIS_URL
from tests.ops.helpers import MEMBOT, membot_env
from tests.scenario import settings_for
from tests.standins.llm_server import ScriptedLLMServer

AGENT = "console:lea"


@pytest.fixture
def env(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> dict[str, str]:
    return membot_env(settings_for(llm, "anthropic", key_prefix, data_dir))


def membot(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*MEMBOT, *args], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=120, check=False
    )
    out, err = result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(result.args, result.returncode, out, err)


def test_unreadable_items_are_set_aside_and_everything_else_keeps_working(
    env: dict[str, str], tmp_path: Path, key_prefix: str
) -> None:
    told = membot(["chat", "--user", "lea"], env, tmp_path, b"my name is Lea\n")
    assert told.stdout.splitlines() == ["membot> Got it, I'll remember that."], told.stderr
    keys = RedisKeys(key_prefix)
    agent = AgentKey.parse(AGENT)
    client = syncredis.Redis.from_url(REDIS_URL)
    try:
        client.rpush(keys.queue(agent), b'{"role": "user", "content": "cut', b"\xff\xfe not even text", b"42")
        client.set(keys.summary(agent), b"\xc3\x28 broken utf-8")
        client.hset(keys.core_blocks(agent), "persona", b"\xff\xff\xff")
        client.hset(keys.core_limits(agent), "human", "lots")
        client.hset(keys.core_versions(agent), "1", "{not json")
        client.hset(keys.meta(agent), "modified", "yesterday")
    finally:
        client.close()

    chat = membot(["chat", "--user", "lea"], env, tmp_path, b"what is my name?\n")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.splitlines() == ["membot> Your name is Lea."]

    shown = membot(["memory", "show", AGENT, "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["quarantined"] == 7  # three queue entries, summary, persona, a limit, the modified time
    assert view["summary"] == ""
    assert "Name: Lea" in view["core"]["human"]["value"]
    text = membot(["memory", "show", AGENT], env, tmp_path)
    assert "unreadable items set aside" in text.stdout and "7 (see `membot memory export`)" in text.stdout

    exported = membot(["memory", "export", AGENT], env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    quarantined = document["quarantine"]
    assert sorted(item["store"] for item in quarantined) == [
        "core_block",
        "core_limit",
        "core_meta",
        "core_version",
        "queue",
        "queue",
        "queue",
        "summary",
    ]
    by_raw = {item.get("raw") or base64.b64decode(item["raw_base64"]): item for item in quarantined}
    assert by_raw[b"\xff\xfe not even text"]["reason"].startswith("UnicodeDecodeError")
    assert by_raw['{"role": "user", "content": "cut']["reason"].startswith("JSONDecodeError")
    assert by_raw["42"]["store"] == "queue"
    assert by_raw[b"\xc3\x28 broken utf-8"]["store"] == "summary"
    assert by_raw["lots"]["field"] == "human"
    assert next(v["version"] for v in document["core"] if v["kind"] == "core_version") > 1, "version 1 set aside"
    queued = [item for item in document["working"] if item["kind"] == "queued_message"]
    assert len(queued) == view["queue_length"] and all(item["role"] for item in queued)
    audited = [item for item in document["audit"] if item["kind"] == "quarantine"]
    assert len(audited) == 8 and all("raw" not in item["detail"] for item in audited)
    history = membot(["memory", "history", AGENT, "--limit", "1"], env, tmp_path)
    assert "unreadable core_version item set aside (JSONDecodeError" in history.stdout

    again = membot(["chat", "--user", "lea"], env, tmp_path, b"hello again\n")
    assert again.stdout.splitlines() == ["membot> echo: hello again"]
    assert json.loads(membot(["memory", "show", AGENT, "--json"], env, tmp_path).stdout)["quarantined"] == 8

    reset = membot(["memory", "reset", AGENT, "--yes", "--json"], env, tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)["removed"]["quarantine"] == 8
    client = syncredis.Redis.from_url(REDIS_URL)
    try:
        assert not client.exists(keys.quarantine(agent))
    finally:
        client.close()


def test_an_unreadable_heartbeat_job_is_set_aside_with_its_agent(
    env: dict[str, str], tmp_path: Path, key_prefix: str
) -> None:
    keys = RedisKeys(key_prefix)
    client = syncredis.Redis.from_url(REDIS_URL)
    try:
        client.hset(keys.scheduler_jobs(), "reflect:console:lea", b"\x80\x05 not a pickle")
        client.zadd(keys.scheduler_run_times(), {"reflect:console:lea": 1.0})
        listed = membot(["jobs", "list", "--json"], env, tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []
        assert not client.hexists(keys.scheduler_jobs(), "reflect:console:lea")
        assert not client.zscore(keys.scheduler_run_times(), "reflect:console:lea")
        [record] = [json.loads(raw) for raw in client.lrange(keys.quarantine(AgentKey.parse(AGENT)), 0, -1)]
    finally:
        client.close()
    assert record["store"] == "scheduler_job" and record["field"] == "reflect:console:lea"
    assert base64.b64decode(record["raw_base64"]) == b"\x80\x05 not a pickle"
    history = membot(["memory", "history", AGENT, "--json"], env, tmp_path)
    assert [item["kind"] for item in json.loads(history.stdout)] == ["quarantine"]


def test_keys_of_the_wrong_redis_type_are_set_aside_and_everything_else_keeps_working(
    env: dict[str, str], tmp_path: Path, key_prefix: str
) -> None:
    told = membot(["chat", "--user", "lea"], env, tmp_path, b"my name is Lea\n")
    assert told.stdout.splitlines() == ["membot> Got it, I'll remember that."], told.stderr
    keys = RedisKeys(key_prefix)
    agent = AgentKey.parse(AGENT)
    client = syncredis.Redis.from_url(REDIS_URL)
    try:  # each key replaced by one of another type (Redis answers WRONGTYPE to the commands we use on them)
        client.delete(keys.queue(agent), keys.summary(agent), keys.core_limits(agent), keys.meta(agent))
        client.set(keys.queue(agent), "a string where the queue belongs")
        client.rpush(keys.summary(agent), "a list", "where the summary belongs")
        client.sadd(keys.core_limits(agent), "a set")
        client.set(keys.meta(agent), "a string where a hash belongs")
    finally:
        client.close()

    chat = membot(["chat", "--user", "lea"], env, tmp_path, b"what is my name?\n")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.splitlines() == ["membot> Your name is Lea."]

    shown = membot(["memory", "show", AGENT, "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["quarantined"] == 4 and "Name: Lea" in view["core"]["human"]["value"]
    exported = membot(["memory", "export", AGENT], env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    by_store = {item["store"]: item for item in document["quarantine"]}
    assert sorted(by_store) == ["core_limit", "core_meta", "queue", "summary"]
    assert by_store["queue"]["reason"] == "WRONGTYPE: a string where a list belongs"
    assert json.loads(by_store["summary"]["raw"]) == ["a list", "where the summary belongs"]
    assert by_store["core_limit"]["type"] == "set"
    audited = [item for item in document["audit"] if item["kind"] == "quarantine"]
    assert len(audited) == 4
    queued = [item["content"] for item in document["working"] if item["kind"] == "queued_message"]
    assert any("what is my name?" in text for text in queued), "the new message was queued after the set-aside"
