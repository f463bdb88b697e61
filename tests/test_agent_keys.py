"""Agent keys: a platform-neutral value in the core, each platform's rules in the adapters."""

from __future__ import annotations

import pytest

from adapters.console import console_agent, console_message
from adapters.discord.normalize import agent_for
from adapters.keys import check_agent_key, parse_agent_key, person_of
from adapters.slack.normalize import slack_agent
from bot.core.events import AgentKey, InvalidAgentKey
from memory.journal import message_from_json, message_to_json


def test_each_adapter_builds_its_platforms_keys_and_names_the_person() -> None:
    assert str(console_agent("sam")) == "console:sam" and person_of(console_agent("sam")) == "console:sam"
    assert str(agent_for(123, 456)) == "discord:123:456" and person_of(agent_for(123, 456)) == "discord:456"
    assert person_of(agent_for(None, 456)) == person_of(agent_for(9, 456)), "one Discord person across servers"
    assert str(slack_agent("T1", "U1")) == "slack:T1:U1" and person_of(slack_agent("T1", "U1")) == "slack:T1:U1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("discrod:1:2", "unknown platform"),
        ("console:g:sam", "have no workspace"),
        ("slack:U1", "invalid agent key 'slack:U1': expected console:<name>"),
        ("discord:1:bad key", "invalid agent key part"),
        ("nonsense", "invalid agent key"),
    ],
)
def test_an_operators_agent_key_is_checked_against_the_platforms_rules(text: str, reason: str) -> None:
    with pytest.raises(InvalidAgentKey, match=reason):
        parse_agent_key(text)
    assert parse_agent_key(" slack:T1:U1 ") == AgentKey("slack", "T1", "U1")
    with pytest.raises(InvalidAgentKey, match="need a workspace"):
        check_agent_key(AgentKey("slack", None, "U1"))


def test_a_journaled_message_keeps_its_agent_and_an_older_entry_gets_the_old_rule() -> None:
    said = console_message("ann", "hi")
    assert message_from_json(message_to_json(said)).agent_key == console_agent("ann")
    older = message_to_json(said) | {"platform": "discord", "workspace_id": "77", "is_dm": False, "author_id": "5"}
    older.pop("agent_key")
    assert message_from_json(older).agent_key == AgentKey("discord", "77", "5")
    assert message_from_json(older | {"is_dm": True}).agent_key == AgentKey("discord", "dm", "5")
    slack_dm = older | {"platform": "slack", "workspace_id": "T1", "is_dm": True}
    assert message_from_json(slack_dm).agent_key == AgentKey("slack", "T1", "5")
    assert message_from_json(older | {"platform": "console", "workspace_id": None}).agent_key == console_agent("5")
