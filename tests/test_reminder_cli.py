"""`membot memory reminders`: list a user's reminders and cancel one, from Redis alone; erase removes them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.scenario import env_for, settings_for
from tests.standins.llm_server import ScriptedLLMServer
from tests.test_cli import membot

ZONE = "America/New_York"


@pytest.fixture
def env(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> dict[str, str]:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, MEMBOT_TIMEZONE=ZONE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    return {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}


def test_memory_reminders_lists_and_cancels(env: dict[str, str], tmp_path: Path) -> None:
    local = (datetime.now(UTC) + timedelta(days=2)).astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)
    chat = membot(["chat", "--user", "rita"], env, tmp_path, f"remind: {local:%Y-%m-%dT%H:%M} Buy flowers.\n".encode())
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.startswith("membot> Set: Reminder "), chat.stdout

    listed = membot(["memory", "reminders", "console:rita", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    [reminder] = json.loads(listed.stdout)["reminders"]
    assert reminder["text"] == "Buy flowers." and reminder["timezone"] == ZONE
    assert reminder["local_due"] == f"{local:%Y-%m-%d %H:%M} {ZONE}"
    table = membot(["memory", "reminders", "console:rita"], env, tmp_path)
    assert reminder["id"] in table.stdout and "Buy flowers." in table.stdout

    wrong = membot(["memory", "reminders", "console:rita", "--cancel", "nope"], env, tmp_path)
    assert wrong.returncode == 1 and "no pending reminder 'nope'" in wrong.stderr
    cancelled = membot(["memory", "reminders", "console:rita", "--cancel", reminder["id"]], env, tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"cancelled reminder {reminder['id']} of console:rita")
    empty = membot(["memory", "reminders", "console:rita"], env, tmp_path)
    assert empty.stdout.strip() == "console:rita has no pending reminders"

    membot(["chat", "--user", "rita"], env, tmp_path, f"remind: {local:%Y-%m-%dT%H:%M} Again.\n".encode())
    erased = membot(["memory", "erase", "console:rita", "--yes", "--json"], env, tmp_path)
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout)["removed"]["reminders"] == 1, erased.stdout


def test_memory_timezone_shows_and_sets_the_zone_reminders_use(env: dict[str, str], tmp_path: Path) -> None:
    assert membot(["chat", "--user", "tom"], env, tmp_path, b"hello\n").returncode == 0
    shown = membot(["memory", "timezone", "console:tom"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"time zone of console:tom: {ZONE} (") and "the default" in shown.stdout
    changed = membot(["memory", "timezone", "console:tom", "Europe/Berlin"], env, tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.startswith("time zone of console:tom: Europe/Berlin (") and "default" not in changed.stdout
    local = (datetime.now(UTC) + timedelta(days=1)).astimezone(ZoneInfo("Europe/Berlin")).replace(tzinfo=None)
    chat = membot(["chat", "--user", "tom"], env, tmp_path, f"remind: {local:%Y-%m-%dT%H:%M} Call Ida.\n".encode())
    assert chat.returncode == 0, chat.stderr
    [reminder] = json.loads(membot(["memory", "reminders", "console:tom", "--json"], env, tmp_path).stdout)["reminders"]
    assert reminder["timezone"] == "Europe/Berlin" and reminder["local_due"] == f"{local:%Y-%m-%d %H:%M} Europe/Berlin"
    refused = membot(["memory", "timezone", "console:tom", "Berlin"], env, tmp_path)
    assert refused.returncode == 2 and "use an IANA name such as Europe/Berlin" in refused.stderr
    unknown = membot(["memory", "timezone", "console:nobody"], env, tmp_path)
    assert unknown.returncode == 1
