"""Helpers for deployment tests: free ports, a private redis-server, polling, and `membot` subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.scenario import env_for

MEMBOT = [sys.executable, "-m", "bot"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def membot_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `membot` subprocess running with ``settings`` (nothing leaks in from the caller)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_", "SLACK_"))}
    return {**base, **env_for(settings), "HF_HUB_OFFLINE": "1", **extra}


class RedisServer:
    """A private redis-server on a free port, for tests that stop it or run it in another mode."""

    def __init__(self, directory: Path, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (deploy/ensure-redis.sh installs it)")
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)


@contextlib.contextmanager
def redis_server(directory: Path, *extra: str) -> Iterator[RedisServer]:
    server = RedisServer(directory, *extra)
    try:
        yield server
    finally:
        server.stop()


def wait_for_port(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"nothing listens on port {port}")
        time.sleep(0.05)
