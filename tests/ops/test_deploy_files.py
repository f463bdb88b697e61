"""deploy/Dockerfile and deploy/compose.yaml read as a reviewer would (no Docker daemon here to build or run them),
the container health check against a live membot, and .env.example naming every setting."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import yaml

from bot.app import open_app
from bot.healthcheck import healthz_url
from bot.settings import Settings
from tests.ops.helpers import free_port
from tests.ops.test_endpoints import serving
from tests.scenario import settings_for
from tests.standins.llm_server import ScriptedLLMServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8")))


def test_compose_runs_membot_redis_with_aof_and_a_qdrant_server_each_with_a_volume() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"membot", "redis", "qdrant"}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
        for mount in service["volumes"]:
            assert mount.split(":")[0] in spec["volumes"], f"{name}: {mount} is a named volume"
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert any(mount.endswith(":/qdrant/storage") for mount in services["qdrant"]["volumes"])

    membot = services["membot"]
    assert membot["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / membot["build"]["context"] / membot["build"]["dockerfile"]).is_file()
    assert membot["env_file"] == [{"path": "../.env", "required": True}]
    env = membot["environment"]
    assert env["REDIS_URL"].startswith("redis://redis:") and env["QDRANT_URL"].startswith("http://qdrant:")
    assert {dep: cond["condition"] for dep, cond in membot["depends_on"].items()} == {
        "redis": "service_healthy",
        "qdrant": "service_healthy",
    }
    assert membot["healthcheck"]["test"] == ["CMD", "python", "-m", "bot.healthcheck"]
    grace = int(membot["stop_grace_period"].rstrip("s"))
    assert grace > Settings.model_fields["shutdown_timeout"].default, "turns drain before Docker kills membot"
    assert any(port.endswith(":8080") for port in membot["ports"]) and "3000:3000" in membot["ports"]


def test_dockerfile_is_multi_stage_cpu_only_non_root_with_the_model_baked_in() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE)
    assert stages == ["build", "runtime"]
    build, runtime = text.split("\nFROM ")[1:3]
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in build, "CPU-only torch"
    assert "LocalEmbedder().embed" in build and "HF_HUB_OFFLINE=1" in build, "the model is loaded at build time"
    for copied in re.findall(r"^COPY (?!--)(.+?) \S+$", build, re.MULTILINE):
        for path in copied.split():
            assert (ROOT / path).exists(), f"COPY {path}"
    assert "COPY --from=build /opt/venv /opt/venv" in runtime and "pip install" not in runtime
    users = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert users == ["membot"], "the final stage runs as the membot user, not root"
    assert "HEALTHCHECK" in runtime and '"bot.healthcheck"' in runtime
    assert re.search(r'^ENTRYPOINT \["membot"\]$', runtime, re.MULTILINE) and 'CMD ["run"]' in runtime
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".env", "data"} <= set(ignored), "no secrets or local data in the build context"


def test_env_example_names_every_setting() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    aliases = {field.alias for field in Settings.model_fields.values() if field.alias}
    assert aliases - documented == set()


def test_healthz_url_follows_the_settings() -> None:
    assert healthz_url({}) == "http://127.0.0.1:8080/healthz"
    assert healthz_url({"MEMBOT_HTTP_HOST": "0.0.0.0", "MEMBOT_HTTP_PORT": "9100"}) == "http://127.0.0.1:9100/healthz"
    assert healthz_url({"MEMBOT_HTTP_HOST": "10.1.2.3", "MEMBOT_HTTP_PORT": "9100"}) == "http://10.1.2.3:9100/healthz"
    assert healthz_url({"MEMBOT_HTTP_PORT": ""}) is None


async def test_the_container_health_check_passes_on_a_live_membot_and_fails_without_one(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    port = free_port()

    async def healthcheck() -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.healthcheck", env={"MEMBOT_HTTP_PORT": str(port)}, stderr=asyncio.subprocess.PIPE
        )
        await process.communicate()
        assert process.returncode is not None
        return process.returncode

    assert await healthcheck() == 1
    settings = settings_for(llm, "anthropic", key_prefix, data_dir, MEMBOT_HTTP_PORT=port)
    async with open_app(settings) as app, serving(app):
        assert await healthcheck() == 0
