"""Images sent with a message membot answers (a DM, a mention, a reply), downloaded for a model that sees them.

``discord.Attachment.read()`` fetches each one from Discord's CDN. Images that are not fetched, and why, go to the
runtime as ``Attachment.problem`` (it tells the user and the model); nothing is fetched when the model cannot see
images.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import discord

from bot.core.events import Attachment
from bot.core.images import MAX_IMAGE_BYTES, is_image, plan

log = logging.getLogger(__name__)


def image_attachments(attachments: Sequence[discord.Attachment]) -> list[discord.Attachment]:
    return [a for a in attachments if is_image(a.filename, a.content_type)]


async def fetch_images(message: discord.Message, *, enabled: bool) -> tuple[Attachment, ...]:
    """Every attachment of ``message`` as an ``Attachment``; with ``enabled``, the images that may be looked at
    downloaded (at once, at most ``MAX_IMAGES_PER_MESSAGE``), each with its bytes or why it could not be."""
    images = image_attachments(message.attachments)
    reasons = plan([(a.filename, a.content_type, a.size) for a in images]) if enabled else [""] * len(images)
    wanted = [a for a, why in zip(images, reasons, strict=True) if why is None]
    results = await asyncio.gather(*(_read(a) for a in wanted))
    fetched = dict(zip([a.id for a in wanted], results, strict=True))
    found = []
    for attachment in message.attachments:
        content, problem = fetched.get(attachment.id, (None, None))
        found.append(
            Attachment(attachment.filename, attachment.content_type, attachment.size, attachment.url, content, problem)
        )
    return tuple(found)


async def _read(attachment: discord.Attachment) -> tuple[bytes | None, str | None]:
    try:
        data = await attachment.read()
    except (discord.HTTPException, discord.NotFound) as exc:
        log.warning("could not download an image", extra={"status": getattr(exc, "status", None)})
        return None, "I couldn't download it from Discord"
    if len(data) > MAX_IMAGE_BYTES:  # Discord named a smaller size than it sent
        return None, "it is larger than Discord said, and too big for me to look at"
    return data, None
