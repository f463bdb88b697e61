"""One recall/archival store per Redis namespace, and a data directory that does not depend on where membot starts.

Real `membot` subprocesses on the shared Redis (a test prefix), embedded Qdrant in temp dirs, the stand-in model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from memory.redis.keys import RedisKeys
from memory.redis.store_identity import STORE_ID_FILE, StoreConflict, StoreRegistry
from tests.scenario import env_for, settings_for
from tests.standins.llm_server import ScriptedLLMServer
from tests.test_cli import MEMBOT, membot


@pytest.fixture
def base_env(llm: ScriptedLLMServer, key_prefix: str, tmp_path: Path) -> dict[str, str]:
    """A `membot` environment on the test prefix, without MEMBOT_DATA_DIR: the per-user default applies, which
    XDG_DATA_HOME puts under the test's temp dir."""
    settings = settings_for(llm, "anthropic", key_prefix, tmp_path / "unused")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    env.update({k: v for k, v in env_for(settings).items() if k != "MEMBOT_DATA_DIR"})
    return {**env, "HF_HUB_OFFLINE": "1", "XDG_DATA_HOME": str(tmp_path / "xdg")}


def folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_a_second_chat_with_another_data_dir_on_the_same_redis_is_refused(
    base_env: dict[str, str], tmp_path: Path, key_prefix: str
) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_env, second_env = (
        {**base_env, "MEMBOT_DATA_DIR": str(first_dir)},
        {**base_env, "MEMBOT_DATA_DIR": str(second_dir)},
    )
    chat = subprocess.Popen(
        [*MEMBOT, "chat", "--user", "ann"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=first_env, cwd=tmp_path
    )
    try:
        assert chat.stdin is not None and chat.stdout is not None
        chat.stdin.write(b"my name is Ann\n")
        chat.stdin.flush()
        assert chat.stdout.readline().decode() == "membot> Got it, I'll remember that.\n"  # the first one runs

        refused = membot(["chat", "--user", "ann"], second_env, tmp_path, b"what is my name?\n")
        assert refused.returncode == 2 and refused.stdout == "", refused.stdout
        message = " ".join(refused.stderr.split())
        assert f"{first_dir}/qdrant" in message and f"{second_dir}/qdrant" in message, message
        assert "QDRANT_URL" in message and f"MEMBOT_DATA_DIR={first_dir}" in message
        assert f"Redis namespace '{key_prefix}'" in message and "Traceback" not in refused.stderr
        assert not (second_dir / "qdrant").exists(), "a refused store is not even created"

        exported = membot(["memory", "export", "console:ann"], second_env, tmp_path)  # one-off commands too
        assert exported.returncode == 2 and f"{first_dir}/qdrant" in " ".join(exported.stderr.split())
        chat.stdin.close()
        assert chat.wait(timeout=60) == 0
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.wait(timeout=30)
        if chat.stdout is not None:
            chat.stdout.close()

    again = membot(["chat", "--user", "ann"], first_env, tmp_path, b"what is my name?\n")  # the same store: fine
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["membot> Your name is Ann."]
    document = json.loads(membot(["memory", "export", "console:ann"], first_env, folder(tmp_path / "x")).stdout)
    assert len(document["recall"]) == 4, "every message is in the one store"


def test_the_default_data_dir_is_the_same_from_any_working_directory(base_env: dict[str, str], tmp_path: Path) -> None:
    here, elsewhere = folder(tmp_path / "here"), folder(tmp_path / "elsewhere" / "deeper")
    told = membot(["chat", "--user", "bo"], base_env, here, b"my name is Bo\n")
    assert told.returncode == 0, told.stderr
    shown = membot(["memory", "show", "console:bo", "--json"], base_env, elsewhere)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert "Name: Bo" in view["core"]["human"]["value"] and view["recall_count"] == 2
    assert (tmp_path / "xdg" / "membot" / "qdrant" / STORE_ID_FILE).is_file(), "the per-user data directory"
    assert not (here / "data").exists() and not (elsewhere / "data").exists()


def test_a_store_in_the_old_dot_data_default_is_used_with_a_notice_until_it_is_moved(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    project = folder(tmp_path / "project")
    legacy = {**base_env, "MEMBOT_DATA_DIR": str(project / "data")}  # as the old default `./data` made it
    assert membot(["chat", "--user", "cy"], legacy, project, b"my name is Cy\n").returncode == 0

    shown = membot(["memory", "show", "console:cy"], base_env, project)
    assert shown.returncode == 0, shown.stderr
    assert "Name: Cy" in shown.stdout
    notice = " ".join(shown.stderr.split())
    target = tmp_path / "xdg" / "membot"
    assert "old default data directory" in notice and f"mv {project / 'data'}/qdrant {target}/" in notice, notice

    target.mkdir(parents=True)  # what the notice says to do
    shutil.move(project / "data" / "qdrant", target / "qdrant")
    moved = membot(["memory", "show", "console:cy"], base_env, folder(tmp_path / "anywhere"))
    assert moved.returncode == 0, moved.stderr
    assert "Name: Cy" in moved.stdout and "old default" not in moved.stderr, "the moved store is the same store"


async def test_a_namespace_served_by_a_qdrant_server_refuses_an_embedded_store(
    redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    registry = StoreRegistry(redis_client, RedisKeys(key_prefix), redis_description="redis://test")
    embedded = folder(tmp_path / "data" / "qdrant")
    await registry.claim_embedded(embedded)
    replaced = await registry.claim_server("http://qdrant:6333")
    assert replaced is not None and replaced.path == str(embedded), "switching to a server is always allowed"
    with pytest.raises(StoreConflict, match=r"Set QDRANT_URL=http://qdrant:6333"):
        await registry.check_embedded(embedded)
    with pytest.raises(StoreConflict, match="Qdrant server at http://qdrant:6333"):
        await registry.claim_embedded(folder(tmp_path / "other" / "qdrant"))
    assert await registry.claim_server("http://qdrant:6333") is None, "any number of server processes"


async def test_a_deleted_registered_store_on_this_host_is_taken_over(
    redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    registry = StoreRegistry(redis_client, RedisKeys(key_prefix), redis_description="redis://test")
    old, new = folder(tmp_path / "old" / "qdrant"), folder(tmp_path / "new" / "qdrant")
    first = await registry.claim_embedded(old)
    with pytest.raises(StoreConflict):
        await registry.claim_embedded(new)
    shutil.rmtree(old.parent)
    second = await registry.claim_embedded(new)
    registered = await registry.registered()
    assert registered is not None and second.id != first.id
    assert (registered.id, registered.path) == (second.id, str(new.resolve()))
