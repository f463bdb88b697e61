"""Each platform's rules for its agent keys: which keys name an agent, and whom a key belongs to.

The core's ``AgentKey`` is a platform-neutral value; these rules are platform policy, so they live with the
adapters. Agent keys typed by an operator (the CLI) are checked here; the person (``person_of``) names what rate
limits, dedupe flags and an erase cover: a Slack user id is only unique in its workspace, a Discord or console
user is one person across servers and DMs.
"""

from __future__ import annotations

from bot.core.events import AgentKey, InvalidAgentKey

HAS_WORKSPACE = {"console": False, "discord": True, "slack": True}  # console:<name>, <platform>:<workspace>:<user>
PLATFORMS = tuple(HAS_WORKSPACE)


def check_agent_key(agent: AgentKey) -> AgentKey:
    """``agent`` when it is a key of a known platform in that platform's shape; raise InvalidAgentKey otherwise."""
    if agent.platform not in HAS_WORKSPACE:
        raise InvalidAgentKey(f"unknown platform {agent.platform!r}; expected one of {', '.join(PLATFORMS)}")
    if not HAS_WORKSPACE[agent.platform] and agent.workspace is not None:
        raise InvalidAgentKey(f"{agent.platform} agent keys have no workspace: use {agent.platform}:<name>")
    if HAS_WORKSPACE[agent.platform] and agent.workspace is None:
        raise InvalidAgentKey(f"{agent.platform} agent keys need a workspace: {agent.platform}:<workspace>:<user>")
    return agent


def parse_agent_key(text: str) -> AgentKey:
    """Parse an operator's agent key (``console:<name>``, ``discord:<guild|dm>:<user>``, ``slack:<team>:<user>``);
    raise InvalidAgentKey with the reason."""
    parts = text.strip().split(":")
    if len(parts) == 2 and parts[0] == "console":
        platform, workspace, user = parts[0], None, parts[1]
    elif len(parts) == 3:
        platform, workspace, user = parts
    else:
        raise InvalidAgentKey(
            f"invalid agent key {text!r}: expected console:<name>, discord:<guild|dm>:<user> or slack:<team>:<user>"
        )
    if platform not in HAS_WORKSPACE:
        raise InvalidAgentKey(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")
    return check_agent_key(AgentKey(platform, workspace, user))


def person_of(agent: AgentKey) -> str:
    """Who ``agent`` belongs to: ``slack:<team>:<user>`` (one agent per person), ``<platform>:<user>`` elsewhere
    (a Discord person has one agent per server and one for DMs)."""
    if agent.platform == "slack":
        return str(agent)
    return f"{agent.platform}:{agent.user}"
