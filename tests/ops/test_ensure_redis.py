"""deploy/ensure-redis.sh, which `make run` and `make test` call: it finds REDIS_URL and MEMBOT_DATA_DIR in the
environment or, as membot does, in ./.env, and starts a local redis-server there when none answers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import redis as syncredis

from tests.ops.helpers import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "ensure-redis.sh"


def _ensure(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MEMBOT_DATA_DIR")}
    return subprocess.run(
        ["bash", str(SCRIPT)], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_redis_url_and_data_dir_are_read_from_dotenv(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "membot data"
    (tmp_path / ".env").write_text(
        f'# membot settings\nexport REDIS_URL="redis://127.0.0.1:{port}/0"  # a local one\nMEMBOT_DATA_DIR={data}\n',
        encoding="utf-8",
    )
    started = _ensure(tmp_path)
    client = syncredis.Redis(port=port, socket_timeout=5)
    try:
        assert started.returncode == 0, started.stderr
        assert f"started on 127.0.0.1:{port}" in started.stdout
        assert client.ping()
        assert (data / "redis").is_dir()
        again = _ensure(tmp_path)
        assert again.returncode == 0 and f"answering at 127.0.0.1:{port}" in again.stdout
    finally:
        client.shutdown(nosave=True)
        client.close()


def test_the_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REDIS_URL=redis://127.0.0.1:1/0\n", encoding="utf-8")
    result = _ensure(tmp_path, REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    assert result.returncode == 0 and "answering at" in result.stdout, result.stderr
