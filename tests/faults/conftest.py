"""Fault fixtures: a redis-server the test owns, to restart, pause and stop (never the shared one on 6379).

Use it by naming the fixture::

    def test_something(owned_redis: OwnedRedis) -> None:
        settings = settings_for(..., REDIS_URL=owned_redis.url)
        owned_redis.restart()          # stop (SIGTERM), start again on the same port; waits until it answers
        owned_redis.stop()             # down until start() / restart()
        owned_redis.start()
        with owned_redis.paused():     # SIGSTOP ... SIGCONT: connections stay open, nothing answers
            ...
        owned_redis.pause(); owned_redis.resume()   # the same, by hand (e.g. resumed from another thread)

- No persistence by default (``--save "" --appendonly no``): a restart empties it. Mark a test
  ``@pytest.mark.redis_aof`` to run it with AOF (``appendfsync always``), so a restart keeps every write, as the
  production Redis in ``deploy/compose.yaml`` does.
- Cleanup always happens: a paused server is resumed and every process the fixture started is killed at the end
  of the test, whatever the test did.
- ``owned_redis.client()`` is a synchronous redis-py client on it (closed at the end of the test).
- More servers (a replica, a second node): build ``OwnedRedis(tmp_path / "replica", extra=("--replicaof",
  "127.0.0.1", str(port)))`` yourself, ``start()`` it, and ``cleanup()`` it in a ``finally``
  (``tests/faults/test_sentinel_failover.py`` does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as syncredis

__all__ = ["OwnedRedis"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnedRedis:
    """A private redis-server on a fixed free port that a test may restart, pause and stop."""

    def __init__(self, directory: Path, *, aof: bool = False, extra: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (deploy/ensure-redis.sh installs it)")
        self._binary = binary
        self.directory = directory
        self.aof = aof
        self.extra = extra  # more redis-server arguments, e.g. ("--replicaof", "127.0.0.1", "6380")
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._clients: list[syncredis.Redis] = []
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, within: float = 15.0) -> None:
        """Start the server (on the same port every time) and wait until it answers PING."""
        if self.running:
            return
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        self._process = subprocess.Popen(
            [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence, *self.extra],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._paused = False
        deadline = time.monotonic() + within
        probe = syncredis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                with contextlib.suppress(syncredis.RedisError, OSError):
                    if probe.ping():
                        return
                if self._process.poll() is not None:
                    pytest.fail(f"redis-server on port {self.port} exited with {self._process.returncode}")
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server on port {self.port} did not answer within {within}s")
                time.sleep(0.05)
        finally:
            probe.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, as a supervisor would; SIGKILL if it lingers). Resumes it first if paused."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if self._paused:
            self.resume(process)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def kill(self) -> None:
        """Kill the server (SIGKILL): no shutdown, nothing flushed."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        self._paused = False

    def restart(self) -> None:
        """Stop and start again on the same port; returns once it answers."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the port stays open and connections stay up, but nothing is answered until ``resume``."""
        if self._process is None:
            raise RuntimeError("the owned redis-server is not running")
        os.kill(self._process.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self, process: subprocess.Popen[bytes] | None = None) -> None:
        """SIGCONT a paused server."""
        process = process or self._process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def client(self) -> syncredis.Redis:
        """A synchronous client on this server (closed at the end of the test)."""
        client = syncredis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=5)
        self._clients.append(client)
        return client

    def cleanup(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        self.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "redis_aof: the owned_redis fixture runs with AOF persistence (fsync always)")


@pytest.fixture
def owned_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OwnedRedis]:
    """A redis-server this test owns (see the module docstring); started, and always stopped at the end."""
    server = OwnedRedis(tmp_path / "owned-redis", aof=request.node.get_closest_marker("redis_aof") is not None)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
