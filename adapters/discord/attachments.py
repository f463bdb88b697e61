"""Text and Markdown files sent to membot in a DM go into the sender's archival memory, with a short confirmation."""

from __future__ import annotations

import logging
from pathlib import PurePath

import discord

from bot.admin.memory import MemoryAdmin
from bot.core.events import AgentKey, OutboundReply, ReplyKind, Scope
from bot.core.memory_types import event_cause
from bot.core.ports import ReplySink

log = logging.getLogger(__name__)

IMPORT_FAILED_NOTICE = "I couldn't import your file right now; please send it again in a while."
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".text"})
MAX_IMPORT_BYTES = 1_000_000


def is_text_document(filename: str, content_type: str | None) -> bool:
    """A .txt/.md file, or any ``text/*`` content type."""
    suffix = PurePath(filename).suffix.lower()
    return suffix in TEXT_SUFFIXES or (content_type or "").split(";")[0].strip().lower().startswith("text/")


async def import_attachment(attachment: discord.Attachment, agent: AgentKey, admin: MemoryAdmin, cause: str) -> str:
    """Import one attachment (``cause``: the message that carried it); return what to tell the user."""
    name = discord.utils.escape_markdown(attachment.filename)
    if not is_text_document(attachment.filename, attachment.content_type):
        return f"I can import only text and Markdown files (.txt, .md), so I skipped {name}."
    if attachment.size > MAX_IMPORT_BYTES:
        return (
            f"{name} is too big to import ({attachment.size / 1_000_000:.2f} MB; the limit is "
            f"{MAX_IMPORT_BYTES / 1_000_000:g} MB). Split it into smaller files and send those."
        )
    try:
        data = await attachment.read()
    except discord.HTTPException as exc:
        log.warning("could not download an attachment", extra={"status": exc.status})
        return f"I couldn't download {name} from Discord; please send it again."
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return f"{name} is not UTF-8 text, so I couldn't import it."
    report = await admin.import_text(agent, attachment.filename, text, Scope.PRIVATE, cause=cause)
    if report.chunks == 0:
        return f"{name} is empty; there was nothing to import."
    message = f"Imported {name} into my archival memory: {report.stored} of {report.chunks} passages stored"
    if report.duplicates:
        message += f" ({report.duplicates} I already had)"
    return message + "."


async def import_attachments(message: discord.Message, agent: AgentKey, admin: MemoryAdmin, sink: ReplySink) -> None:
    """Import every attachment of a DM, confirming each one to the sender. An import that fails (the memory store
    is unreachable, a bug) is logged and told; it never keeps the message's text from its turn."""
    async with sink.typing():
        for attachment in message.attachments:
            try:
                text = await import_attachment(attachment, agent, admin, event_cause(agent.platform, str(message.id)))
            except Exception:
                log.exception("an attachment could not be imported", extra={"message_id": message.id})
                text = IMPORT_FAILED_NOTICE
            await sink.send(OutboundReply(text, ReplyKind.NOTICE, str(message.id)))
