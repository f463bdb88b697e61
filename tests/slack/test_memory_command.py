"""The /memory slash command: acknowledged at once, answered ephemerally, erasing only behind a confirm button."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.admin.memory import UnknownAgent
from tests.slack.conftest import ADA, ANN, BOB, MakeSlack
from tests.slack.harness import SlackHarness, all_text, buttons


async def _meet(slack: SlackHarness) -> None:
    """Ann and Bob tell their names in a channel (so the names are public memory)."""
    await slack.say_in_channel(ANN, "my name is Ann")
    await slack.say_in_channel(BOB, "my name is Bob")


async def _answer(slack: SlackHarness, response_url: str) -> dict:
    await slack.settle()
    [answer] = slack.responses(response_url)
    return answer


async def test_show_is_acknowledged_at_once_and_answers_ephemerally_with_the_callers_memory_only(
    slack: SlackHarness,
) -> None:
    await _meet(slack)
    reply, response_url = await slack.command(ANN, "show")
    assert reply.status == 200 and reply.seconds < 3.0
    assert reply.text == ""  # a bare acknowledgement; the answer follows on response_url
    answer = await _answer(slack, response_url)
    assert answer["response_type"] == "ephemeral"
    shown = all_text(answer)
    assert "Name: Ann" in shown and "Name: Bob" not in shown
    assert "Recall memory: 2 messages" in shown
    assert slack.slack.calls_to("chat.postMessage")[2:] == []  # nothing posted in the channel


async def test_reset_runs_only_after_the_confirm_button(slack: SlackHarness) -> None:
    await _meet(slack)
    reply, response_url = await slack.command(ANN, "reset")
    assert reply.status == 200
    prompt = await _answer(slack, response_url)
    assert prompt["response_type"] == "ephemeral"
    assert (await slack.app.services.admin.show(slack.agent(ANN))).recall_count == 2  # untouched so far
    button = buttons(prompt["blocks"])["memory_reset_confirm"]
    assert button["style"] == "danger" and button["confirm"]["confirm"]["text"] == "Reset"
    assert json.loads(button["value"]) == {"agent": str(slack.agent(ANN))}

    pressed = await slack.press(ANN, button, response_url=response_url)
    assert pressed.status == 200
    await slack.settle()
    with pytest.raises(UnknownAgent):
        await slack.app.services.admin.show(slack.agent(ANN))
    assert (await slack.app.services.admin.show(slack.agent(BOB))).recall_count == 2
    done = slack.responses(response_url)[-1]
    assert done["replace_original"] is True and "erased" in done["text"]


async def test_cancel_removes_the_prompt_and_erases_nothing(slack: SlackHarness) -> None:
    await _meet(slack)
    _, response_url = await slack.command(ANN, "reset")
    prompt = await _answer(slack, response_url)
    await slack.press(ANN, buttons(prompt["blocks"])["memory_cancel"], response_url=response_url)
    await slack.settle()
    assert slack.responses(response_url)[-1]["delete_original"] is True
    assert (await slack.app.services.admin.show(slack.agent(ANN))).recall_count == 2


async def test_a_reset_button_pressed_by_someone_else_is_refused(slack: SlackHarness) -> None:
    await _meet(slack)
    _, response_url = await slack.command(ANN, "reset")
    prompt = await _answer(slack, response_url)
    await slack.press(BOB, buttons(prompt["blocks"])["memory_reset_confirm"], response_url=response_url)
    await slack.settle()
    assert "only server admins" in slack.responses(response_url)[-1]["text"]
    assert (await slack.app.services.admin.show(slack.agent(ANN))).recall_count == 2


async def test_forget_lists_what_it_would_forget_and_forgets_after_the_button(slack: SlackHarness) -> None:
    await _meet(slack)
    _, response_url = await slack.command(ANN, "forget Ann")
    prompt = await _answer(slack, response_url)
    assert "Name: Ann" in all_text(prompt["blocks"])
    view = await slack.app.services.admin.show(slack.agent(ANN))
    assert "Name: Ann" in view.blocks[1].value + view.blocks[0].value
    await slack.press(ANN, buttons(prompt["blocks"])["memory_forget_confirm"], response_url=response_url)
    await slack.settle()
    assert "I forgot" in slack.responses(response_url)[-1]["text"]
    view = await slack.app.services.admin.show(slack.agent(ANN))
    assert all("Name: Ann" not in block.value for block in view.blocks)
    bob = await slack.app.services.admin.show(slack.agent(BOB))
    assert any("Name: Bob" in block.value for block in bob.blocks)


async def test_forget_shows_the_new_list_when_memory_changed_before_the_button(slack: SlackHarness) -> None:
    await _meet(slack)
    _, response_url = await slack.command(ANN, "forget Ann", channel=f"D{ANN}", channel_name="directmessage")
    prompt = await _answer(slack, response_url)
    await slack.say_dm(ANN, "Ann likes tea")  # new matching memories arrive meanwhile
    await slack.press(ANN, buttons(prompt["blocks"])["memory_forget_confirm"], response_url=response_url)
    await slack.settle()
    updated = slack.responses(response_url)[-1]
    assert "changed since you asked" in all_text(updated["blocks"])
    assert any("Name: Ann" in b.value for b in (await slack.app.services.admin.show(slack.agent(ANN))).blocks)


async def test_search_answers_ephemerally(slack: SlackHarness) -> None:
    await _meet(slack)
    _, response_url = await slack.command(ANN, "search name", channel=f"D{ANN}", channel_name="directmessage")
    answer = await _answer(slack, response_url)
    assert answer["response_type"] == "ephemeral"
    assert "my name is Ann" in all_text(answer["blocks"]) and "Bob" not in all_text(answer["blocks"])


async def test_search_from_a_channel_leaves_out_what_was_said_in_dms(slack: SlackHarness) -> None:
    await slack.say_dm(ANN, "my name is Ann")
    _, response_url = await slack.command(ANN, "search name")
    answer = all_text(await _answer(slack, response_url))
    assert "my name is Ann" not in answer and "only what was said in public" in answer


async def test_export_uploads_a_json_file_to_the_users_dm(slack: SlackHarness) -> None:
    await _meet(slack)
    _, response_url = await slack.command(ANN, "export")
    answer = await _answer(slack, response_url)
    assert answer["response_type"] == "ephemeral" and "direct messages" in answer["text"]
    assert slack.slack.calls_to("conversations.open")[0].params["users"] == ANN
    [complete] = slack.slack.calls_to("files.completeUploadExternal")
    assert complete.params["channel_id"] == f"D{ANN}"
    [uploaded] = slack.slack.uploads.values()
    document = json.loads(uploaded)
    assert document["agent"] == f"slack:T0TEST:{ANN}"
    assert "Name: Ann" in json.dumps(document["core"]) and "Bob" not in uploaded.decode()


async def test_a_non_admins_admin_subcommand_is_refused(slack: SlackHarness) -> None:
    await _meet(slack)
    for text in (f"admin show <@{ANN}|ann>", f"admin reset <@{ANN}>"):
        _, response_url = await slack.command(BOB, text)
        answer = await _answer(slack, response_url)
        assert answer["response_type"] == "ephemeral"
        assert "only server admins" in answer["text"] and "Name: Ann" not in all_text(answer)
    assert slack.slack.calls_to("users.info")[-1].params["user"] == BOB
    assert (await slack.app.services.admin.show(slack.agent(ANN))).recall_count == 2


async def test_a_workspace_admin_can_show_and_reset_another_users_memory(slack: SlackHarness) -> None:
    await _meet(slack)
    _, response_url = await slack.command(ADA, f"admin show <@{ANN}|ann>")
    assert "Name: Ann" in all_text(await _answer(slack, response_url))
    _, response_url = await slack.command(ADA, f"admin reset <@{ANN}>")
    prompt = await _answer(slack, response_url)
    await slack.press(ADA, buttons(prompt["blocks"])["memory_reset_confirm"], response_url=response_url)
    await slack.settle()
    with pytest.raises(UnknownAgent):
        await slack.app.services.admin.show(slack.agent(ANN))


async def test_bot_admins_from_settings_may_use_admin_subcommands(make_slack: MakeSlack) -> None:
    slack = await make_slack(MEMBOT_ADMIN_IDS=BOB)
    await _meet(slack)
    _, response_url = await slack.command(BOB, f"admin show {ANN}")
    assert "Name: Ann" in all_text(await _answer(slack, response_url))


async def test_help_and_unknown_subcommands_explain_the_command(slack: SlackHarness) -> None:
    _, help_url = await slack.command(ANN, "")
    _, unknown_url = await slack.command(ANN, "dance")
    _, show_url = await slack.command(ANN, "show")
    await slack.settle()
    assert "/memory show" in slack.responses(help_url)[0]["text"]
    assert "I don't know `dance`" in slack.responses(unknown_url)[0]["text"]
    assert slack.responses(show_url)[0]["text"] == "I don't remember anything about you yet."


async def test_proactive_is_opt_in_per_user_and_answers_ephemerally(slack: SlackHarness) -> None:
    control = slack.app.services.proactive
    assert control is not None and not (await control.policy(slack.agent(ANN))).enabled, "off until opted in"
    reply, response_url = await slack.command(ANN, "proactive on 23-07 Europe/Berlin")
    assert reply.status == 200
    answer = await _answer(slack, response_url)
    assert answer["response_type"] == "ephemeral"
    assert (
        answer["text"] == "Proactive messages for you: on: at most 2 per day, quiet hours 23:00-07:00 (Europe/Berlin)."
    )
    policy = await control.policy(slack.agent(ANN))
    assert policy.enabled and str(policy.quiet_hours) == "23:00-07:00" and policy.timezone == "Europe/Berlin"
    assert not (await control.policy(slack.agent(BOB))).enabled, "only the caller's choice changed"

    _, bad_url = await slack.command(ANN, "proactive off 22-08 Mars/Olympus")
    error = await _answer(slack, bad_url)
    assert error["response_type"] == "ephemeral"
    assert "unknown time zone 'Mars/Olympus'" in error["text"]
    assert (await control.policy(slack.agent(ANN))).enabled, "an invalid setting changes nothing"

    _, usage_url = await slack.command(ANN, "proactive maybe")
    assert "Usage: `/memory proactive on|off" in (await _answer(slack, usage_url))["text"]
    _, off_url = await slack.command(ANN, "proactive OFF")
    assert (await _answer(slack, off_url))["text"] == "Proactive messages for you: off."
    assert not (await control.policy(slack.agent(ANN))).enabled


async def test_reminders_are_listed_with_cancel_buttons_and_cancelled_by_button_or_id(slack: SlackHarness) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None)
    await slack.say_dm(ANN, f"remind: {later:%Y-%m-%dT%H:%M} Call mom.")
    await slack.say_dm(ANN, f"remind: {later + timedelta(hours=1):%Y-%m-%dT%H:%M} Water the plants.")
    first, second = await slack.app.services.admin.reminders(slack.agent(ANN))

    in_channel = await _answer(slack, (await slack.command(ANN, "reminders"))[1])
    assert "no pending reminders" in all_text(in_channel), "reminders set in a DM are not listed in a channel"
    _, response_url = await slack.command(ANN, "reminders", channel=f"D{ANN}", channel_name="directmessage")
    listed = await _answer(slack, response_url)
    assert listed["response_type"] == "ephemeral"
    assert "Call mom." in all_text(listed) and "Water the plants." in all_text(listed)
    cancels = [block["accessory"] for block in listed["blocks"] if "accessory" in block]
    assert [json.loads(button["value"])["id"] for button in cancels] == [first.id, second.id]

    await slack.press(BOB, cancels[0], response_url=response_url)  # not Bob's to cancel
    await slack.settle()
    assert len(await slack.app.services.admin.reminders(slack.agent(ANN))) == 2
    await slack.press(ANN, cancels[0], response_url=response_url)
    await slack.settle()
    done = slack.responses(response_url)[-1]
    assert done["replace_original"] is True
    assert "Cancelled your reminder" in done["text"] and "Call mom." in done["text"]

    _, by_id = await slack.command(ANN, f"reminders cancel {second.id}", channel=f"D{ANN}", channel_name="dm")
    assert "Water the plants." in (await _answer(slack, by_id))["text"]
    assert await slack.app.services.admin.reminders(slack.agent(ANN)) == []
