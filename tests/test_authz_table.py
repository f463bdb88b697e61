"""The README's "Who may do what" table is what bot/admin/authz.py decides: every cell, plus the cases around it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.admin.authz import Action, Actor, Authorizer, Forbidden
from bot.core.events import AgentKey, Scope
from bot.core.tools import TOOL_NAMES, tool_specs

README = Path(__file__).resolve().parent.parent / "README.md"
MEMBER = AgentKey("discord", "g1", "u2")  # a member's memory in server g1
SUBJECTS = ("user", "platform admin", "bot admin")


def readme_table() -> dict[Action, dict[str, bool]]:
    """{action: {subject: allowed}} read from the table between the authz-table markers."""
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- authz-table -->", 1)[1].split("<!-- /authz-table -->", 1)[0]
    rows: dict[Action, dict[str, bool]] = {}
    for line in table.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.match(r"`(\w+)`", cells[0])
        assert match, f"each row names its action in backticks: {line}"
        answers = [cell.split()[0].lower() for cell in cells[1:]]
        assert set(answers) <= {"yes", "no"}, line
        rows[Action(match.group(1))] = {s: a == "yes" for s, a in zip(SUBJECTS, answers, strict=True)}
    return rows


TABLE = readme_table()


def actor(subject: str) -> Actor:
    if subject == "user":
        return Actor("discord", "u2", "g1")
    if subject == "platform admin":
        return Actor("discord", "boss", "g1", is_platform_admin=True)
    return Actor("discord", "root", "g9")


def allowed(authz: Authorizer, who: Actor, action: Action, target: AgentKey | None) -> bool:
    try:
        authz.check(who, action, target)
    except Forbidden:
        return False
    return True


def test_the_table_lists_every_action() -> None:
    assert set(TABLE) == set(Action)


@pytest.mark.parametrize(
    ("action", "subject"), [(action, subject) for action in TABLE for subject in SUBJECTS], ids=str
)
def test_every_cell_of_the_readme_table(action: Action, subject: str) -> None:
    authz = Authorizer(frozenset({"root"}))
    target = None if action is Action.CHANNEL_MODE else MEMBER
    assert allowed(authz, actor(subject), action, target) is TABLE[action][subject]


@pytest.mark.parametrize("action", sorted(Action))
def test_nobody_else_reaches_a_members_memory(action: Action) -> None:
    authz = Authorizer(frozenset({"root"}))
    target = None if action is Action.CHANNEL_MODE else MEMBER
    assert not allowed(authz, Actor("discord", "u3", "g1"), action, target), "another member"
    other_server = Actor("discord", "boss", "g9", is_platform_admin=True)
    assert not allowed(authz, other_server, action, MEMBER), "an admin of another server"
    dm_memory = AgentKey("discord", "dm", "u2")
    assert not allowed(authz, actor("platform admin"), action, dm_memory), "DM memory is beyond server admins"
    assert not allowed(authz, Actor("slack", "u2", "g1"), action, MEMBER), "the same id on another platform"


def test_only_the_owner_or_a_bot_admin_in_a_dm_is_shown_everything() -> None:
    authz = Authorizer(frozenset({"root"}))
    slack_member = AgentKey("slack", "T1", "u2")
    in_dm, in_channel = Actor("slack", "u2", "T1", in_private=True), Actor("slack", "u2", "T1")
    assert authz.view_scope(in_dm, slack_member) is Scope.PRIVATE
    assert authz.view_scope(in_channel, slack_member) is Scope.PUBLIC
    assert authz.view_scope(Actor("slack", "ws-admin", "T1", True, in_private=True), slack_member) is Scope.PUBLIC
    assert authz.view_scope(Actor("slack", "root", "T1", in_private=True), slack_member) is Scope.PRIVATE
    assert authz.view_scope(Actor("slack", "root", "T1"), slack_member) is Scope.PUBLIC
    assert in_dm.cause(slack_member) == "user:slack:u2"
    assert Actor("slack", "root", "T1").cause(slack_member) == "admin:slack:root"


def test_the_model_has_no_admin_functions() -> None:
    names = {spec.name for spec in tool_specs()}
    assert (
        names
        == set(TOOL_NAMES)
        == {
            "send_message",
            "core_memory_append",
            "core_memory_replace",
            "conversation_search",
            "conversation_search_date",
            "archival_memory_insert",
            "archival_memory_search",
            "schedule_reminder",
            "list_reminders",
            "cancel_reminder",
        }
    )
    for spec in tool_specs():
        assert not {"agent", "user", "target"} & set(spec.parameters["properties"]), "no reaching other agents"
