"""Which attachments are images membot can show a model, and their limits. Pure functions on bytes and names.

A model is given PNG, JPEG, GIF and WebP images (what both the Anthropic and the OpenAI APIs take), at most
``MAX_IMAGES_PER_MESSAGE`` per message and ``MAX_IMAGE_BYTES`` each: Anthropic refuses an image whose base64 text
is longer than 5 MiB, which is 3.75 MiB of image. The format is read from the bytes (``sniff``), never trusted from
a file name or a declared type: an API refuses an image whose declared type does not match its bytes.

Adapters use ``is_image`` and ``plan`` to decide what to download; the runtime uses ``image_input`` to turn the
bytes into what a model is given.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import PurePath

from bot.llm.types import ImageInput

SUPPORTED = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WebP"}
SUPPORTED_TEXT = "PNG, JPEG, GIF and WebP"
SUPPORTED_ANY = "PNG, JPEG, GIF or WebP"
MAX_IMAGE_BYTES = 5 * 1024 * 1024 * 3 // 4  # 3.75 MiB: 5 MiB once base64-encoded (Anthropic's limit)
MAX_IMAGES_PER_MESSAGE = 4
UNKNOWN_SIZE_TOKENS = 1600  # an image whose size cannot be read: the most either provider charges for one

_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
    ".ico": "image/x-icon",
}
_NAMES = {"image/heic": "HEIC", "image/heif": "HEIF", "image/avif": "AVIF", "image/svg+xml": "SVG"}


def _declared(filename: str, content_type: str | None) -> str:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.startswith("image/"):
        return kind
    return _SUFFIXES.get(PurePath(filename).suffix.lower(), kind)


def is_image(filename: str, content_type: str | None) -> bool:
    """Whether an attachment is a picture (of any format): an ``image/*`` type, or an image file suffix."""
    return _declared(filename, content_type).startswith("image/")


def format_name(media_type: str) -> str:
    """A format as people say it: "PNG", "HEIC", "TIFF"."""
    known = SUPPORTED.get(media_type) or _NAMES.get(media_type)
    return known or media_type.removeprefix("image/").removeprefix("x-").upper()


def size_text(size: int) -> str:
    """A size as people read it: "3.75 MB", "420 KB" (binary units, as the limits are)."""
    if size >= 1_048_576:
        return f"{size / 1_048_576:.2f}".rstrip("0").rstrip(".") + " MB"
    return f"{max(1, size // 1024)} KB"


def refusal(filename: str, content_type: str | None, size: int | None) -> str | None:
    """Why an image attachment will not be shown to a model, known before downloading it (None: fetch it).

    The reason completes "I couldn't look at <file>: ...".
    """
    declared = _declared(filename, content_type)
    if declared.startswith("image/") and declared not in SUPPORTED:
        return f"it is a {format_name(declared)} image, and I can look at {SUPPORTED_TEXT} images"
    if size is not None and size > MAX_IMAGE_BYTES:
        return f"it is {size_text(size)}, and I look at images up to {size_text(MAX_IMAGE_BYTES)}"
    return None


def plan(files: Sequence[tuple[str, str | None, int | None]]) -> list[str | None]:
    """For each image file (name, declared type, size): None to fetch it, or why it is not looked at. The first
    ``MAX_IMAGES_PER_MESSAGE`` images that may be looked at are fetched; the ones after them are over the limit."""
    fetched = 0
    reasons: list[str | None] = []
    for name, content_type, size in files:
        why = refusal(name, content_type, size)
        if why is None:
            fetched += 1
            if fetched > MAX_IMAGES_PER_MESSAGE:
                why = f"I look at {MAX_IMAGES_PER_MESSAGE} images per message at most"
        reasons.append(why)
    return reasons


def sniff(data: bytes) -> str | None:
    """The media type the bytes are (PNG, JPEG, GIF, WebP), or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def dimensions(data: bytes, media_type: str) -> tuple[int, int] | None:
    """Width and height from the image's header, or None when it cannot be read."""
    try:
        if media_type == "image/png" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        if media_type == "image/gif":
            width, height = struct.unpack("<HH", data[6:10])
            return int(width), int(height)
        if media_type == "image/webp":
            return _webp_dimensions(data)
        if media_type == "image/jpeg":
            return _jpeg_dimensions(data)
    except struct.error:
        return None
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        index += 2 + length
    return None


def estimate_tokens(size: tuple[int, int] | None) -> int:
    """Input tokens an image costs, the larger of what Anthropic and OpenAI charge for its size.

    Anthropic: ``width * height / 750`` after scaling the long edge to at most 1,568 px (about 1,600 at most).
    OpenAI (high detail): fit in 2048 x 2048, shortest side to 768 px, then 85 + 170 per 512 px tile.
    """
    if size is None or min(size) <= 0:
        return UNKNOWN_SIZE_TOKENS
    width, height = size
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    anthropic = math.ceil(width * scale * height * scale / 750)
    fit = min(1.0, 2048 / max(width, height))
    w, h = width * fit, height * fit
    short = min(1.0, 768 / min(w, h))
    tiles = math.ceil(w * short / 512) * math.ceil(h * short / 512)
    return max(anthropic, 85 + 170 * tiles)


def image_input(name: str, data: bytes) -> ImageInput | str:
    """The image a model is given, or why it cannot be (completing "I couldn't look at <file>: ...")."""
    media_type = sniff(data)
    if media_type is None:
        return f"it is not a {SUPPORTED_ANY} image"
    if len(data) > MAX_IMAGE_BYTES:
        return f"it is {size_text(len(data))}, and I look at images up to {size_text(MAX_IMAGE_BYTES)}"
    return ImageInput(media_type, data, name, estimate_tokens(dimensions(data, media_type)))
