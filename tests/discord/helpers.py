"""Helpers for Discord scenarios: what membot sent in reply to a message, and a sentinel for "no answer"."""

from __future__ import annotations

from tests.discord.conftest import DiscordHarness
from tests.standins.discord_server import BOB, BOT, DiscordStandIn, Payload, RestCall

MENTION = f"<@{BOT['id']}>"


def replies_to(discord_api: DiscordStandIn, message: Payload) -> list[RestCall]:
    """Messages membot sent in reply to ``message``."""
    return [
        call
        for call in discord_api.matching(discord_api.created_in(message["channel_id"]))
        if str((call.json.get("message_reference") or {}).get("message_id")) == message["id"]
    ]


async def answer_to(discord_api: DiscordStandIn, message: Payload, count: int = 1) -> list[RestCall]:
    """Wait for ``count`` messages membot sent in reply to ``message``."""
    await discord_api.wait_for(lambda call: call in replies_to(discord_api, message), count=count)
    return replies_to(discord_api, message)


async def imported(discord_api: DiscordStandIn, message: Payload) -> str:
    """The final text of the import status membot posted in reply to ``message`` (its last edit, or the message
    itself if it was never edited): every file's result."""
    [status] = (await answer_to(discord_api, message))[:1]
    edits_of = discord_api.edits_of(message["channel_id"], status.response["id"])

    def final(call: RestCall) -> bool:
        return edits_of(call) and "…" not in call.json["content"] and "waiting." not in call.json["content"]

    await discord_api.wait_for(final)
    return str(discord_api.matching(final)[-1].json["content"])


def model_saw(harness: DiscordHarness, text: str) -> bool:
    """Whether any request to the model contained ``text``."""
    return any(text in str(request.messages) for request in harness.llm.requests)


async def sentinel(harness: DiscordHarness) -> None:
    """A DM that is answered; once it is, every earlier event has been handled."""
    sent = await harness.discord.send_message(BOB, "sentinel ping")
    await answer_to(harness.discord, sent)
