"""`membot doctor` asks each service itself: the model for a few tokens, Discord who the token is (GET /users/@me),
Slack auth.test (and apps.connections.open for Socket Mode), through the real SDKs against the stand-ins."""

from __future__ import annotations

from pathlib import Path

from bot.ops.doctor import run_checks
from tests.scenario import settings_for
from tests.standins.discord_server import DiscordStandIn
from tests.standins.llm_server import ScriptedLLMServer, ScriptedReply
from tests.standins.slack_api import SlackStandIn


def _by_name(results: list[tuple[str, bool, str]]) -> dict[str, tuple[bool, str]]:
    return {name: (ok, detail) for name, ok, detail in results}


async def test_doctor_asks_the_model_discord_and_slack(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path) -> None:
    async with DiscordStandIn() as discord_api, SlackStandIn() as slack:
        settings = settings_for(
            llm,
            "anthropic",
            key_prefix,
            data_dir,
            DISCORD_TOKEN="test-token",
            DISCORD_API_BASE_URL=discord_api.base_url,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_APP_TOKEN=slack.app_token,
            SLACK_API_URL=slack.api_url,
        )
        before = len(llm.requests)
        checks = _by_name(await run_checks(settings))
    ok, detail = checks["language model"]
    assert ok and "answered in" in detail, detail
    assert len(llm.requests) == before + 1, "the model itself was asked"
    assert checks["discord"][0] and "logged in as" in checks["discord"][1], checks["discord"]
    assert [c.path for c in discord_api.calls] == ["/users/@me"]
    assert checks["slack"][0] and slack.team_id in checks["slack"][1], checks["slack"]
    assert "Socket Mode token works" in checks["slack"][1]
    assert {c.method for c in slack.calls} == {"auth.test", "apps.connections.open"}


async def test_doctor_names_a_refused_token_and_a_failing_model(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    async with DiscordStandIn() as discord_api, SlackStandIn() as slack:
        settings = settings_for(  # a 401 is not retried: the check fails at once
            llm,
            "openai",
            key_prefix,
            data_dir,
            DISCORD_TOKEN="not-the-token",
            DISCORD_API_BASE_URL=discord_api.base_url,
            SLACK_BOT_TOKEN="xoxb-wrong",
            SLACK_API_URL=slack.api_url,
        )
        llm.push(ScriptedReply(status=401, error_type="authentication_error", error_message="invalid x-api-key"))
        checks = _by_name(await run_checks(settings))
    ok, detail = checks["language model"]
    assert not ok and "failed" in detail, detail
    assert checks["discord"] == (False, "Discord refused DISCORD_TOKEN (401): copy the bot token again from the portal")
    ok, detail = checks["slack"]
    assert not ok and "SLACK_BOT_TOKEN" in detail and "invalid_auth" in detail, detail
    assert checks["redis"][0], "later checks still run"
