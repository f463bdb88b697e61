"""Documents shared with membot in a DM (text, Markdown, HTML, PDF, DOCX) go into the sender's archival memory.

The event only names the file; files.info gives ``url_private_download``, which is fetched with the bot token.
Files up to MAX_IMPORT_BYTES that ``bot.admin.documents`` can read are imported; anything else is answered with a
sentence saying why it was skipped. One status message in the DM shows every file's progress, edited with
chat.update (at most about once a second: ``bot.admin.import_progress``) until it gives each file's result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import PurePath

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.admin.documents import SUPPORTED_SUFFIXES, DocumentError
from bot.admin.import_progress import ImportProgress
from bot.admin.memory import MemoryAdmin
from bot.core.events import AgentKey, Scope

from .normalize import SlackFile

log = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 20_000_000
KNOWN_TYPES = frozenset(
    {"application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "text/html"}
)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=30)
IMPORT_FAILED_NOTICE = "I couldn't import `{name}` right now; please send it again in a while."


class ImportRefused(Exception):
    """The file cannot be imported; the message is meant for the user."""


def importable(file: SlackFile) -> bool:
    kind = (file.mimetype or "").lower()
    return PurePath(file.name).suffix.lower() in SUPPORTED_SUFFIXES or kind.startswith("text/") or kind in KNOWN_TYPES


def size_text(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 1_000_000 else f"{max(1, size // 1000)} KB"


class FetchFailed(Exception):
    """A file could not be fetched from Slack; the message completes "I couldn't ... `<name>`: "."""


async def fetch(client: AsyncWebClient, token: str, file: SlackFile, max_bytes: int) -> bytes:
    """A file's bytes, via files.info and its private download URL, with the bot token. Raises FetchFailed (also
    when it turns out longer than ``max_bytes``)."""
    try:
        info = (await client.files_info(file=file.id)).get("file") or {}
    except SlackApiError as exc:
        log.warning("files.info failed", extra={"file": file.id, "error": exc.response.get("error")})
        raise FetchFailed(f"Slack said: {exc.response.get('error')}") from None
    url = info.get("url_private_download") or info.get("url_private")
    if not url:
        raise FetchFailed("Slack gave me no download link")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status != 200:
                raise FetchFailed(f"the download failed with HTTP {response.status}")
            data = await response.content.read(max_bytes + 1)
    except aiohttp.ClientError as exc:
        raise FetchFailed(f"the download failed ({type(exc).__name__})") from None
    except TimeoutError:
        raise FetchFailed("the download took too long") from None
    if len(data) > max_bytes:
        raise FetchFailed(f"it is larger than {size_text(max_bytes)}")
    return data


async def download(client: AsyncWebClient, token: str, file: SlackFile) -> bytes:
    """A document's bytes, for import. Raises ImportRefused."""
    if not importable(file):
        raise ImportRefused(f"I can import text, Markdown, HTML, PDF and Word (.docx) files; I skipped `{file.name}`.")
    if file.size is not None and file.size > MAX_IMPORT_BYTES:
        raise ImportRefused(
            f"`{file.name}` is {size_text(file.size)}; I import files up to {size_text(MAX_IMPORT_BYTES)}."
        )
    try:
        return await fetch(client, token, file, MAX_IMPORT_BYTES)
    except FetchFailed as exc:
        raise ImportRefused(f"I couldn't download `{file.name}`: {exc}.") from None


class SlackStatus:
    """The import's status message in the DM (chat.postMessage), then edited in place with chat.update."""

    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str | None) -> None:
        self._client = client
        self._channel = channel
        self._thread = thread_ts
        self._ts: str | None = None

    async def post(self, text: str) -> bool:
        try:
            response = await self._client.chat_postMessage(
                channel=self._channel, text=text, thread_ts=self._thread, mrkdwn=True, unfurl_links=False
            )
        except SlackApiError as exc:
            log.warning("could not post an import's status", extra={"error": exc.response.get("error")})
            return False
        self._ts = str(response.get("ts") or "") or None
        return True

    async def edit(self, text: str) -> bool:
        if self._ts is None:
            return False
        try:
            await self._client.chat_update(channel=self._channel, ts=self._ts, text=text)
        except SlackApiError as exc:  # ratelimited, message_not_found, cant_update_message, ...
            log.info("could not edit an import's status", extra={"error": exc.response.get("error")})
            return False
        return True


async def import_file(
    client: AsyncWebClient,
    token: str,
    admin: MemoryAdmin,
    agent: AgentKey,
    file: SlackFile,
    cause: str,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Import one file into the agent's private archival memory (``cause``: the message that carried it); the
    sentence for the user."""
    try:
        data = await download(client, token, file)
        name = file.name if PurePath(file.name).suffix else f"{file.name}.txt"
        report = await admin.import_document(agent, name, data, Scope.PRIVATE, cause=cause, progress=progress)
    except ImportRefused as exc:
        return str(exc)
    except DocumentError as exc:
        return f"I couldn't import `{file.name}`: {exc}."
    return report.sentence(f"`{file.name}`")


async def import_files(
    client: AsyncWebClient,
    token: str,
    admin: MemoryAdmin,
    agent: AgentKey,
    files: tuple[SlackFile, ...],
    cause: str,
    status: SlackStatus,
) -> None:
    """Import each file, showing the progress and then each file's result in one status message. A file whose
    import fails (the memory store unreachable, a bug) is logged and told; the other files go on."""
    async with ImportProgress(status, [f"`{file.name}`" for file in files]) as progress:
        for index, file in enumerate(files):
            progress.start(index)
            try:
                line = await import_file(client, token, admin, agent, file, cause, progress.advance(index))
            except Exception:
                log.exception("a file could not be imported", extra={"file": file.id})
                line = IMPORT_FAILED_NOTICE.format(name=file.name)
            progress.finish(index, line)
