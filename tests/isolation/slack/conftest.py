"""The Slack harness's fixtures (the real Bolt app over signed HTTP, the Web API stand-in, the scripted model)."""

from tests.slack.conftest import llm, make_slack, slack  # noqa: F401
