"""deploy/slack-manifest.yaml grants every scope, event and command the adapter uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Web API method the adapter calls → bot scopes that allow it (any one of them).
SCOPES_FOR = {
    "auth_test": set(),
    "chat_postMessage": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "chat_delete": {"chat:write"},  # its own "thinking" message and reply previews
    "chat_update": {"chat:write"},  # a reply shown as it grows, an import's status message
    "conversations_history": {"channels:history", "groups:history", "mpim:history", "im:history"},
    "conversations_replies": {"channels:history", "groups:history", "mpim:history", "im:history"},
    "conversations_info": {"channels:read", "groups:read", "mpim:read", "im:read"},
    "conversations_open": {"im:write"},
    "users_info": {"users:read"},
    "files_info": {"files:read"},
    "files_upload_v2": {"files:write"},
    "views_publish": set(),
    "views_open": set(),
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "deploy" / "slack-manifest.yaml").read_text(encoding="utf-8")))


def test_every_web_api_method_in_the_adapter_has_its_scope(manifest: dict[str, Any]) -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "adapters" / "slack").glob("*.py"))
    used = set(re.findall(r"client\.([A-Za-z_0-9]+)\(", source))
    assert used <= set(SCOPES_FOR), f"add the scope of {used - set(SCOPES_FOR)} to SCOPES_FOR and the manifest"
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    for method in used:
        needed = SCOPES_FOR[method]
        assert not needed or needed & scopes, f"{method} needs one of {needed}"
    assert {"app_mentions:read", "commands", "im:history", "channels:history", "users:read"} <= scopes


def test_events_command_home_and_interactivity(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "app_home_opened",
        "message.channels",
        "message.groups",
        "message.im",
        "message.mpim",
    }
    assert settings["interactivity"]["is_enabled"] is True
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/memory" and command["should_escape"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert settings["socket_mode_enabled"] is True  # the default; HTTP mode is described in the file and README


def test_the_usage_hint_names_every_memory_subcommand(manifest: dict[str, Any]) -> None:
    source = (ROOT / "adapters" / "slack" / "commands.py").read_text(encoding="utf-8")
    handled = set(re.findall(r'sub == "(\w+)"', source))
    handled |= {word for group in re.findall(r"sub in \(([^)]*)\)", source) for word in re.findall(r'"(\w+)"', group)}
    handled -= {"help"}
    [command] = manifest["features"]["slash_commands"]
    hinted = set(re.findall(r"[a-z]+", command["usage_hint"]))
    assert handled and handled <= hinted, f"add {sorted(handled - hinted)} to the manifest's usage_hint"
    assert len(command["usage_hint"]) <= 1000
