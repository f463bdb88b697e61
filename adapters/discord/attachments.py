"""Documents sent to membot in a DM (text, Markdown, HTML, PDF, DOCX) go into the sender's archival memory
(``bot.admin.documents`` reads them). One status message, a reply to the DM, shows the progress of every file and
is edited (``Message.edit``, at most about once a second) until it says how each file went."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import PurePath

import discord

from adapters.discord.sink import allowed_mentions_for, send_chunks
from adapters.discord.split import MESSAGE_CHAR_LIMIT
from bot.admin.documents import SUPPORTED_SUFFIXES, DocumentError
from bot.admin.import_progress import ImportProgress
from bot.admin.memory import MemoryAdmin
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import event_cause
from bot.core.ports import ReplySink

log = logging.getLogger(__name__)

IMPORT_FAILED_NOTICE = "I couldn't import {name} right now; please send it again in a while."
MAX_IMPORT_BYTES = 20_000_000
KNOWN_TYPES = frozenset(
    {"application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "text/html"}
)


def is_document(filename: str, content_type: str | None) -> bool:
    """A file membot can read: by its suffix, or a ``text/*``, PDF or DOCX content type."""
    kind = (content_type or "").split(";")[0].strip().lower()
    return PurePath(filename).suffix.lower() in SUPPORTED_SUFFIXES or kind.startswith("text/") or kind in KNOWN_TYPES


class DiscordStatus:
    """The import's status message: a reply to the DM, then edited in place (a ``StatusMessage``)."""

    def __init__(self, message: discord.Message) -> None:
        self._message = message
        self._sent: discord.Message | None = None

    async def post(self, text: str) -> bool:
        try:
            sent = await send_chunks(self._message.channel, text, reply_to=self._message)
        except discord.HTTPException as exc:
            log.warning("could not post an import's status", extra={"status": exc.status, "code": exc.code})
            return False
        self._sent = sent[0] if len(sent) == 1 else None  # a text split in several messages is not edited
        return True

    async def edit(self, text: str) -> bool:
        if self._sent is None or len(text) > MESSAGE_CHAR_LIMIT:
            return False
        try:
            await self._sent.edit(content=text, allowed_mentions=allowed_mentions_for(None))
        except discord.HTTPException as exc:  # deleted (404), rate limited past discord.py's retries, ...
            log.info("could not edit an import's status", extra={"status": exc.status, "code": exc.code})
            return False
        return True


async def import_attachment(
    attachment: discord.Attachment,
    agent: AgentKey,
    admin: MemoryAdmin,
    cause: str,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Import one attachment (``cause``: the message that carried it); return what to tell the user."""
    name = discord.utils.escape_markdown(attachment.filename)
    if not is_document(attachment.filename, attachment.content_type):
        return f"I can import text, Markdown, HTML, PDF and Word (.docx) files, so I skipped {name}."
    if attachment.size > MAX_IMPORT_BYTES:
        return (
            f"{name} is too big to import ({attachment.size / 1_000_000:.1f} MB; the limit is "
            f"{MAX_IMPORT_BYTES / 1_000_000:g} MB). Split it into smaller files and send those."
        )
    try:
        data = await attachment.read()
    except discord.HTTPException as exc:
        log.warning("could not download an attachment", extra={"status": exc.status})
        return f"I couldn't download {name} from Discord; please send it again."
    filename = attachment.filename if PurePath(attachment.filename).suffix else f"{attachment.filename}.txt"
    try:
        report = await admin.import_document(agent, filename, data, Scope.PRIVATE, cause=cause, progress=progress)
    except DocumentError as exc:
        return f"I couldn't import {name}: {exc}."
    return report.sentence(name)


async def import_attachments(
    message: discord.Message,
    attachments: Sequence[discord.Attachment],
    agent: AgentKey,
    admin: MemoryAdmin,
    sink: ReplySink,
) -> None:
    """Import the documents of a DM (every attachment but its images), showing the progress and then each file's
    result in one status message. An import that fails (the memory store is unreachable, a bug) is logged and
    told; it never keeps the message's text from its turn."""
    cause = event_cause(agent.platform, str(message.id))
    names = [discord.utils.escape_markdown(attachment.filename) for attachment in attachments]
    async with sink.typing(), ImportProgress(DiscordStatus(message), names) as progress:
        for index, attachment in enumerate(attachments):
            progress.start(index)
            try:
                text = await import_attachment(attachment, agent, admin, cause, progress.advance(index))
            except Exception:
                log.exception("an attachment could not be imported", extra={"message_id": message.id})
                text = IMPORT_FAILED_NOTICE.format(name=names[index])
            progress.finish(index, text)
