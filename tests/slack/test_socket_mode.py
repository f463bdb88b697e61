"""Socket Mode, the other transport: the same app behind Bolt's AsyncSocketModeHandler, against the stand-in's
WebSocket (reached through apps.connections.open on SLACK_API_URL). Real Slack is out of reach here; this checks
that envelopes are acknowledged and dispatched like HTTP requests."""

from __future__ import annotations

from adapters.slack import SlackMode
from tests.slack.conftest import ANN, MakeSlack
from tests.slack.harness import texts
from tests.standins.slack_api import SlackStandIn


async def test_socket_mode_answers_a_dm_and_acknowledges_envelopes(make_slack: MakeSlack) -> None:
    slack = await make_slack(SLACK_APP_TOKEN=SlackStandIn().app_token, SLACK_SIGNING_SECRET=None)
    assert slack.adapter.mode is SlackMode.SOCKET and slack.adapter.port is None
    assert slack.slack.calls_to("apps.connections.open")
    event = slack.dm(ANN, "hello over the socket")
    envelope_id = await slack.slack.socket_send("events_api", slack.envelope(event, "Ev0SOCKET"), retry_attempt=0)
    again = await slack.slack.socket_send(
        "events_api", slack.envelope(event, "Ev0SOCKET"), retry_attempt=1, retry_reason="timeout"
    )
    await slack.slack.wait_for(lambda: slack.slack.socket and again in slack.slack.socket.acks)
    await slack.slack.wait_for(lambda: slack.slack.calls_to("chat.postMessage"))
    await slack.settle()
    assert slack.slack.socket is not None and envelope_id in slack.slack.socket.acks
    assert texts(slack.slack.calls_to("chat.postMessage")) == ["echo: hello over the socket"]


async def test_socket_mode_slash_command(make_slack: MakeSlack) -> None:
    slack = await make_slack(SLACK_APP_TOKEN=SlackStandIn().app_token)
    response_url = slack.slack.new_response_url()
    payload = {"command": "/memory", "text": "help", "user_id": ANN, "team_id": "T0TEST", "response_url": response_url}
    envelope_id = await slack.slack.socket_send("slash_commands", payload)
    await slack.slack.wait_for(lambda: slack.slack.socket and envelope_id in slack.slack.socket.acks)
    await slack.settle()
    assert "/memory show" in slack.responses(response_url)[0]["text"]
