"""A user's message as the model sees it and as memory keeps it.

- The text: a header (who, where, when), the recent messages of a channel, the cut of a message longer than
  ``MEMBOT_MAX_MESSAGE_CHARS`` (``pack_user_message``, ``model_view``).
- Its images. One the model can look at (a vision model, a PNG/JPEG/GIF/WebP within the limits of
  ``bot.core.images``) is shown to it with the message during that turn's model calls only; the bytes never reach
  Redis. Before the turn one short call (``prompts/describe_image.md``, no tools) describes each image; the
  description is what stays: in recall with the message (``attachment_text``, indexed for search) and as a
  ``[system]`` line in the queue, so later turns and ``conversation_search`` know what the image showed. Every image
  that is not shown (the model cannot see images, an unsupported format, too big, a failed download, more than the
  per-message limit) is named to the model in the message and to the user in one short notice: never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC

from bot.core.events import Attachment, InboundMessage
from bot.core.images import image_input, is_image, plan
from bot.core.memory_types import Fence, RecallEntry
from bot.core.ports import ChatModel, RecallMemory, WorkingMemory
from bot.core.prompts import load_prompt
from bot.llm.types import ChatMessage, ImageInput, ModelError, SystemPrompt

log = logging.getLogger(__name__)

DESCRIPTION_TOKENS = 300
MAX_DESCRIPTION_CHARS = 1200
MAX_CONTEXT_CHARS = 500  # of the user's words given to the describe call
RECENT_CONTEXT_LIMIT = 5


def image_attachments(message: InboundMessage) -> list[Attachment]:
    return [a for a in message.attachments if is_image(a.filename, a.content_type)]


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


@dataclass(frozen=True)
class MessageImages:
    """A message's images, sorted: ``shown`` to the model, ``unseen`` (name, reason), ``blind`` (names not looked
    at because the model cannot see images)."""

    shown: tuple[ImageInput, ...] = ()
    unseen: tuple[tuple[str, str], ...] = ()
    blind: tuple[str, ...] = ()

    @classmethod
    def of(cls, message: InboundMessage, *, vision: bool) -> MessageImages:
        found = image_attachments(message)
        if not vision:
            return cls(blind=tuple(a.filename for a in found))
        shown: list[ImageInput] = []
        unseen: list[tuple[str, str]] = []
        reasons = plan([(a.filename, a.content_type, a.size) for a in found])
        for attachment, refused in zip(found, reasons, strict=True):
            name = attachment.filename
            why = refused or attachment.problem
            if why is None and attachment.content is None:
                why = "I could not fetch it"
            if why is None:
                made = image_input(name, attachment.content or b"")
                if isinstance(made, ImageInput):
                    shown.append(made)
                    continue
                why = made
            unseen.append((name, why))
        return cls(tuple(shown), tuple(unseen))

    def __bool__(self) -> bool:
        return bool(self.shown or self.unseen or self.blind)

    @property
    def names(self) -> list[str]:
        return [image.name for image in self.shown] + [name for name, _ in self.unseen] + list(self.blind)

    def placeholder(self) -> str:
        """What recall keeps as the text of a message that was only images: their names."""
        return f"[{', '.join(self.names)}]"

    def refused_notice(self) -> str:
        """The notice for images the model service refused after all (the turn went on without them)."""
        return (
            f"The language model refused to look at {_names([i.name for i in self.shown])}, so I answered without it."
        )

    def notice(self) -> str | None:
        """The one notice the user gets about images that were not looked at (None: every image was)."""
        lines = []
        if self.blind:
            lines.append(f"I can't look at images with the current model, so I didn't see {_names(self.blind)}.")
        lines.extend(f"I couldn't look at {name}: {why}." for name, why in self.unseen)
        return "\n".join(lines) or None

    def model_lines(self) -> str:
        """Lines appended to the user's message in the queue: each image, and whether the model is shown it."""
        lines = [f"[image attached: {image.name}]" for image in self.shown]
        lines.extend(
            f"[image attached: {name}; not shown to you: {why}; the user was told]" for name, why in self.unseen
        )
        lines.extend(
            f"[image attached: {name}; not shown to you: the current model cannot see images; the user was told]"
            for name in self.blind
        )
        return "\n".join(lines)

    def recall_text(self, descriptions: Sequence[str | None] | None = None) -> str | None:
        """The message's ``attachment_text`` in recall: each image's name and what it shows; ``descriptions`` (one
        per shown image, None where none was made) once the describe calls are done."""
        lines = []
        for index, image in enumerate(self.shown):
            if descriptions is None:
                lines.append(f"{image.name} (image)")
            elif described := descriptions[index]:
                lines.append(f"{image.name}: {described}")
            else:
                lines.append(f"{image.name} (image; no description was made)")
        lines.extend(f"{name} (image, not looked at)" for name, _ in self.unseen)
        lines.extend(f"{name} (image, not looked at)" for name in self.blind)
        return "\n".join(lines) or None

    def queue_note(self, descriptions: Sequence[str | None]) -> str:
        """The ``[system]`` line queued after the message: what each shown image showed, for later turns."""
        lines = []
        for image, described in zip(self.shown, descriptions, strict=True):
            if described:
                lines.append(f"[system] The image {image.name} attached above shows: {described}")
            else:
                lines.append(f"[system] No description of the image {image.name} was made; only this turn sees it.")
        return "\n".join(lines)


class ImageDescriber:
    """One short model call per image (``prompts/describe_image.md``, no tools) whose text is stored as what the
    image shows. A failed call gives None: the turn still runs, with the image."""

    def __init__(self, model: ChatModel, *, max_output_tokens: int = DESCRIPTION_TOKENS) -> None:
        self._model = model
        self._max_output_tokens = max_output_tokens

    async def store(
        self,
        images: MessageImages,
        entry: RecallEntry,
        packed: ChatMessage,
        recall: RecallMemory,
        working: WorkingMemory,
        fence: Fence,
    ) -> None:
        """Describe the shown images and store what they show: in recall with the message ``entry`` (the same
        point, now with its ``attachment_text``) and as a ``[system]`` line after ``packed`` in the queue."""
        descriptions = await self.describe_all(images.shown, entry.author, entry.text)
        await recall.add([replace(entry, attachment_text=images.recall_text(descriptions))], fence=fence)
        note = ChatMessage("user", images.queue_note(descriptions), private=packed.private)
        await working.append(entry.agent, [note], fence=fence)

    async def describe_all(self, images: Sequence[ImageInput], author: str, text: str) -> list[str | None]:
        return list(await asyncio.gather(*(self.describe(image, author, text) for image in images)))

    async def describe(self, image: ImageInput, author: str, text: str) -> str | None:
        words = text.strip()[:MAX_CONTEXT_CHARS]
        said = f' with these words: "{words}"' if words else " without any words"
        request = ChatMessage("user", f"{author} sent the image {image.name}{said}.", images=(image,))
        try:
            completion = await self._model.complete(
                SystemPrompt(load_prompt("describe_image")), [request], [], max_output_tokens=self._max_output_tokens
            )
        except ModelError as exc:
            log.warning("an image could not be described", extra={"error": type(exc).__name__})
            return None
        described = " ".join(completion.text.split())
        if len(described) > MAX_DESCRIPTION_CHARS:
            described = described[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0] + " …"
        return described or None


def model_view(text: str, max_chars: int, images: MessageImages) -> tuple[str, list[str]]:
    """The text the model is given for a message, and the notices its user gets (a cut, images not looked at)."""
    notices = []
    model_text = text
    if len(text) > max_chars:
        model_text = (
            text[:max_chars] + f"\n[system] This message was cut from {len(text)} to {max_chars} "
            "characters; the full text is stored in recall memory."
        )
        notices.append(
            f"Your message is {len(text):,} characters long; I read the first {max_chars:,}. "
            "The whole text is saved in my memory."
        )
    if images:
        model_text = "\n".join(part for part in (model_text, images.model_lines()) if part)
    if notice := images.notice():
        notices.append(notice)
    return model_text, notices


def pack_user_message(message: InboundMessage, text: str) -> str:
    """The user message as the model sees it: who, where and when, then the text."""
    when = f"{message.timestamp.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if message.is_dm:
        return f"[{when}] {message.author_name} (direct message, {message.platform}):\n{text}"
    where = f"#{message.channel_name}" if message.channel_name else f"channel {message.channel_id}"
    header = f"[{when}] {message.author_name} in {where} ({message.platform}, public)"
    lines = [header]
    recent = message.recent_context[-RECENT_CONTEXT_LIMIT:]
    if recent:
        lines.append("Recent messages from others in the channel:")
        lines.extend(f"- {item.author_name}: {item.text}" for item in recent)
        lines.append(f"{message.author_name} says:")
    return "\n".join(lines) + f"\n{text}"
