"""Shared fixtures: a real Redis (isolated key prefix per test, cleaned up), embedded Qdrant in a temp dir.

Tests never reach a real model provider: ``MEMBOT_*``/provider variables from the developer's environment are
cleared for every test, and model traffic goes to the scripted stand-in in ``tests/standins``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.ops.data_dir import default_data_dir
from tests.standins.brain import Brain
from tests.standins.llm_server import ScriptedLLMServer

REDIS_URL = os.environ.get("MEMBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REAL_DATA_DIR = default_data_dir()  # the developer's own, read before any test points XDG_DATA_HOME elsewhere
_REAL_DATA_DIR_EXISTED = REAL_DATA_DIR.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No test may create the real per-user data directory (every one runs in its temp dir)."""
    if not _REAL_DATA_DIR_EXISTED and REAL_DATA_DIR.exists():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nerror: the test run created the real per-user data directory {REAL_DATA_DIR}")


_PROVIDER_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "QDRANT_URL",
    "DISCORD_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
)


@pytest.fixture(autouse=True)
def _no_real_providers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Forbid real model requests: no credentials or base URLs leak in from the environment. Keep every test's
    data out of the real per-user data directory: MEMBOT_DATA_DIR, and XDG_DATA_HOME (the per-user default, also
    for `membot` subprocesses whose environment drops MEMBOT_*), point into the test's temp dir."""
    for name in list(os.environ):
        if name.startswith("MEMBOT_") and name != "MEMBOT_TEST_REDIS_URL":
            monkeypatch.delenv(name, raising=False)
    for name in _PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("MEMBOT_DATA_DIR", str(tmp_path / "default-data"))


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A Redis key prefix unique to this test; every key under it is deleted afterwards."""
    prefix = f"membot-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    import redis as syncredis

    client = syncredis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "membot-data"
    path.mkdir()
    return path


@pytest.fixture
def brain() -> Brain:
    """The scripted model's rules (tests/standins/brain.py); records its decisions."""
    return Brain()


@pytest.fixture
def llm(brain: Brain) -> Iterator[ScriptedLLMServer]:
    """The scripted LLM stand-in on 127.0.0.1, answering with ``brain``; both wire formats."""
    server = ScriptedLLMServer(brain)
    server.start()
    yield server
    server.stop()
