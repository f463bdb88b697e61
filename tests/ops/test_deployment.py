"""Deployment settings: Discord shard shares (the Discord adapter's), replicas, and the Qdrant server several
processes need (the topology the composition root builds)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from adapters.discord.shards import DiscordShards
from bot.app import topology as topology_of
from bot.ops.deployment import Topology
from bot.settings import ConfigError, Settings, parse_shard_ids
from tests.ops.helpers import MEMBOT, membot_env
from tests.scenario import settings_for
from tests.standins.llm_server import ScriptedLLMServer


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def topology(**values: object) -> Topology:
    return topology_of(settings(**values))


def shards(**values: object) -> DiscordShards:
    return DiscordShards.from_settings(settings(**values))


def test_shard_ids_accept_lists_and_ranges() -> None:
    assert parse_shard_ids("") == ()
    assert parse_shard_ids("3, 0-1,1") == (0, 1, 3)
    for bad in ("a", "3-1", "-1"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard_ids(bad)


def test_which_settings_mean_several_processes() -> None:
    assert not topology().several_processes
    assert shards().connects is None, "Discord's recommended count, all in this process"
    assert not topology(DISCORD_SHARD_COUNT=2).several_processes
    assert shards(DISCORD_SHARD_COUNT=2).connects == (0, 1)
    values = {"DISCORD_SHARD_COUNT": 4, "DISCORD_SHARD_IDS": "2-3", "QDRANT_URL": "http://qdrant:6333"}
    share = topology(**values)
    assert share.several_processes and shards(**values).connects == (2, 3)
    assert share.describe() == "Discord shards 2,3 of 4"
    assert topology(MEMBOT_REPLICAS=3, QDRANT_URL="http://qdrant:6333").describe() == "one of 3 replicas"
    share.check()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"MEMBOT_REPLICAS": 2}, "set QDRANT_URL"),
        ({"DISCORD_SHARD_COUNT": 4, "DISCORD_SHARD_IDS": "0"}, "set QDRANT_URL"),
        ({"DISCORD_SHARD_IDS": "0"}, "needs DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_COUNT": 2, "DISCORD_SHARD_IDS": "2", "QDRANT_URL": "http://q:6333"}, "must be below"),
    ],
)
def test_settings_that_cannot_work_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        topology(**values).check()


def test_membot_run_refuses_replicas_without_a_qdrant_server(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, tmp_path: Path
) -> None:
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, MEMBOT_REPLICAS=2)
    result = subprocess.run(
        [*MEMBOT, "run"], env=membot_env(settings), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "one of 2 replicas" in result.stderr and "set QDRANT_URL" in result.stderr
    assert "Traceback" not in result.stderr
