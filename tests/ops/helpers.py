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


class LocalRedisCluster:
    """A Redis Cluster of real redis-server processes (masters only) on free ports in ``directory``.

    Needs ``redis-server`` and ``redis-cli`` (the caller skips without them); ``stop`` ends every node.
    """

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes: list[RedisServer] = []
        try:
            for index in range(masters):
                bus = str(free_port())  # set explicitly: the default (port + 10000) may be taken or out of range
                options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", bus)
                self.nodes.append(RedisServer(directory / f"node{index}", *options))
            subprocess.run(
                ["redis-cli", "--cluster", "create", *self.addresses, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            for node in self.nodes:
                self._wait_ok(node.port)
        except BaseException:
            self.stop()
            raise

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    @staticmethod
    def _wait_ok(port: int, within: float = 30.0) -> None:
        """Until the node sees every slot served (``cluster_state:ok``)."""
        deadline = time.monotonic() + within
        while True:
            info = subprocess.run(
                ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True, timeout=10
            ).stdout
            if "cluster_state:ok" in info:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the cluster node on port {port} never reached cluster_state:ok:\n{info}")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def redis_cluster(directory: Path, masters: int = 3) -> Iterator[LocalRedisCluster]:
    """A local cluster for one test or module; skips (with the reason) when redis-server or redis-cli is missing."""
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: a Redis Cluster test needs real nodes")
    cluster = LocalRedisCluster(directory, masters)
    try:
        yield cluster
    finally:
        cluster.stop()
