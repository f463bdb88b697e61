"""Discord API payloads for the stand-in: a tiny world (one server, three people, a bot) and builders for
messages, interactions and the objects discord.py expects at login. Pure functions, no I/O."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

Payload = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
MANAGE_GUILD = 1 << 5
EPHEMERAL = 1 << 6


def user(user_id: int, name: str, *, bot: bool = False) -> Payload:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


BOT = user(1_000_000_000_000_000_001, "membot", bot=True)
APPLICATION_ID = BOT["id"]
GUILD_ID = 2_000_000_000_000_000_001
GENERAL = 2_000_000_000_000_000_010  # a text channel
RANDOM = 2_000_000_000_000_000_011  # another text channel
THREAD = 2_000_000_000_000_000_020  # a public thread in #general
BOT_ROLE = 2_000_000_000_000_000_030  # membot's own (managed) role
EVERYONE_ROLE = GUILD_ID
ALICE = user(3_000_000_000_000_000_001, "alice")
BOB = user(3_000_000_000_000_000_002, "bob")
OTHER_BOT = user(3_000_000_000_000_000_003, "otherbot", bot=True)


class Snowflakes:
    """Fresh ids whose timestamp is now (discord.py reads creation times from ids)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self) -> int:
        return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) + (next(self._counter) % 4096)


def now() -> str:
    return datetime.now(UTC).isoformat()


def dm_channel_id(user_payload: Payload) -> int:
    """The DM channel between membot and this user (a fixed id derived from theirs)."""
    return int(user_payload["id"]) + 7


def member(
    user_payload: Payload | None = None, *, permissions: int | None = None, roles: tuple[int, ...] = ()
) -> Payload:
    payload: Payload = {"roles": [str(r) for r in roles], "joined_at": now(), "deaf": False, "mute": False, "flags": 0}
    if user_payload is not None:
        payload["user"] = user_payload
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def application() -> Payload:
    """``GET /oauth2/applications/@me``."""
    return {
        "id": APPLICATION_ID,
        "name": "membot",
        "icon": None,
        "description": "",
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": ALICE,
        "verify_key": "00",
        "flags": 0,
    }


def registered_command(command: Payload, command_id: int) -> Payload:
    """A command as ``PUT /applications/{id}/commands`` returns it."""
    defaults = {"id": str(command_id), "application_id": APPLICATION_ID, "version": "1", "type": 1, "options": []}
    return {**defaults, "default_member_permissions": None, "nsfw": False, **command}


def guild() -> Payload:
    """GUILD_CREATE for the test server: #general, #random, a thread "plans" in #general, membot's role."""

    def text_channel(channel_id: int, name: str, position: int) -> Payload:
        return {"id": str(channel_id), "type": 0, "name": name, "position": position, "guild_id": str(GUILD_ID),
                "permission_overwrites": [], "nsfw": False, "parent_id": None}  # fmt: skip

    role = {"color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0, "permissions": "0"}
    thread = {"id": str(THREAD), "type": 11, "name": "plans", "guild_id": str(GUILD_ID), "parent_id": str(GENERAL),
              "owner_id": ALICE["id"], "message_count": 0, "member_count": 1,
              "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": now(),
                                  "locked": False}}  # fmt: skip
    return {
        "id": str(GUILD_ID),
        "name": "Test Server",
        "icon": None,
        "owner_id": ALICE["id"],
        "unavailable": False,
        "member_count": 4,
        "large": False,
        "features": [],
        "emojis": [],
        "stickers": [],
        "roles": [
            {**role, "id": str(EVERYONE_ROLE), "name": "@everyone", "position": 0, "permissions": "3072"},
            {
                **role,
                "id": str(BOT_ROLE),
                "name": "membot",
                "position": 1,
                "managed": True,
                "tags": {"bot_id": BOT["id"]},
            },
        ],
        "members": [member(BOT, roles=(BOT_ROLE,))],
        "channels": [text_channel(GENERAL, "general", 0), text_channel(RANDOM, "random", 1)],
        "threads": [thread],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "joined_at": now(),
        "premium_tier": 0,
        "preferred_locale": "en-US",
    }


def message(
    message_id: int,
    author: Payload,
    content: str,
    channel_id: int,
    *,
    in_guild: bool,
    mentions: tuple[Payload, ...] = (),
    mention_roles: tuple[int, ...] = (),
    reply_to: Payload | None = None,
    attachments: tuple[Payload, ...] = (),
    flags: int = 0,
    components: list[Payload] | None = None,
) -> Payload:
    """A message object (MESSAGE_CREATE, or what a create-message route returns)."""
    payload: Payload = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": list(mentions),
        "mention_roles": [str(role) for role in mention_roles],
        "attachments": list(attachments),
        "embeds": [],
        "pinned": False,
        "type": 19 if reply_to else 0,
        "flags": flags,
        "components": components or [],
    }
    if in_guild:
        payload["guild_id"] = str(GUILD_ID)
        if not author.get("bot"):
            payload["member"] = member()
    if reply_to is not None:
        reference = {"message_id": reply_to["id"], "channel_id": reply_to["channel_id"]}
        payload["message_reference"] = {**reference, "guild_id": str(GUILD_ID)} if in_guild else reference
        payload["referenced_message"] = reply_to
    return payload


def interaction(
    interaction_id: int,
    author: Payload,
    data: Payload,
    *,
    interaction_type: int = 2,
    in_guild: bool = True,
    channel_id: int = GENERAL,
    permissions: int = 0,
    message: Payload | None = None,
) -> Payload:
    """INTERACTION_CREATE: a slash command (type 2) or a button press (type 3), in the server or in a DM."""
    payload: Payload = {
        "id": str(interaction_id),
        "application_id": APPLICATION_ID,
        "type": interaction_type,
        "token": f"token-{interaction_id}",
        "version": 1,
        "data": data,
        "app_permissions": str((1 << 53) - 1),
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": 10_485_760,
    }
    if in_guild:
        channel_type = 11 if channel_id == THREAD else 0
        payload.update(
            guild_id=str(GUILD_ID),
            guild_locale="en-US",
            channel_id=str(channel_id),
            channel={"id": str(channel_id), "type": channel_type, "guild_id": str(GUILD_ID)},
            member=member(author, permissions=permissions),
            authorizing_integration_owners={"0": str(GUILD_ID)},
            context=0,
        )
    else:
        dm = dm_channel_id(author)
        payload.update(
            channel_id=str(dm),
            channel={"id": str(dm), "type": 1, "recipients": [author]},
            user=author,
            authorizing_integration_owners={"0": "0"},
            context=1,
        )
    if message is not None:
        payload["message"] = message
    return payload


def command_data(command_id: int, command: str, options: dict[str, Any]) -> Payload:
    """The ``data`` of a slash command such as ``"membot user show"`` with ``{"member": ALICE}``: nested
    subcommand groups, string and integer options, and user options with their ``resolved`` members."""
    names = command.split()
    resolved: Payload = {}
    leaf: list[Payload] = []
    for key, value in options.items():
        if isinstance(value, dict) and "username" in value:
            leaf.append({"name": key, "type": 6, "value": value["id"]})
            resolved.setdefault("users", {})[value["id"]] = value
            resolved.setdefault("members", {})[value["id"]] = member(permissions=0)
        elif isinstance(value, int) and not isinstance(value, bool):
            leaf.append({"name": key, "type": 4, "value": value})
        else:
            leaf.append({"name": key, "type": 3, "value": value})
    nested = leaf
    for depth, name in reversed(list(enumerate(names[1:], start=1))):
        kind = 1 if depth == len(names) - 1 else 2  # SUB_COMMAND at the leaf, SUB_COMMAND_GROUP above it
        nested = [{"name": name, "type": kind, "options": nested}]
    data: Payload = {"id": str(command_id), "name": names[0], "type": 1, "options": nested}
    if resolved:
        data["resolved"] = resolved
    return data


def button_custom_id(message_payload: Payload, label: str) -> str:
    """The custom id of the button with this label on a message membot sent."""
    for row in message_payload.get("components") or []:
        for component in row.get("components", []):
            if component.get("label") == label:
                return str(component["custom_id"])
    raise AssertionError(f"no button labelled {label!r} on the message")
