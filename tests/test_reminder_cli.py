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
