"""Images shared with a message membot answers (a DM, a mention), fetched for a model that sees them.

Slack's event names the files; each image is fetched like a document (files.info, then its private download URL
with the bot token: ``files.fetch``). Images that are not fetched, and why, go to the runtime as ``Attachment.problem``
(it tells the user and the model); nothing is fetched when the model cannot see images.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.events import Attachment
from bot.core.images import MAX_IMAGE_BYTES, is_image, plan

from .files import FetchFailed, fetch
from .normalize import SlackFile


def image_files(files: Sequence[SlackFile]) -> list[SlackFile]:
    return [f for f in files if is_image(f.name, f.mimetype)]


async def fetch_images(
    client: AsyncWebClient, token: str, files: Sequence[SlackFile], *, enabled: bool
) -> tuple[Attachment, ...]:
    """Every file of the message as an ``Attachment``; with ``enabled``, the images that may be looked at fetched
    (at once, at most ``MAX_IMAGES_PER_MESSAGE``), each with its bytes or the reason it could not be fetched."""
    images = image_files(files)
    reasons = plan([(f.name, f.mimetype, f.size) for f in images]) if enabled else [""] * len(images)
    wanted = [f for f, why in zip(images, reasons, strict=True) if why is None]
    results = await asyncio.gather(*(_fetch_one(client, token, f) for f in wanted))
    fetched = dict(zip([f.id for f in wanted], results, strict=True))
    attachments = []
    for file in files:
        content, problem = fetched.get(file.id, (None, None))
        attachments.append(Attachment(file.name, file.mimetype, file.size, None, content, problem))
    return tuple(attachments)


async def _fetch_one(client: AsyncWebClient, token: str, file: SlackFile) -> tuple[bytes | None, str | None]:
    try:
        return await fetch(client, token, file, MAX_IMAGE_BYTES), None
    except FetchFailed as exc:
        return None, f"I couldn't download it from Slack ({exc})"
