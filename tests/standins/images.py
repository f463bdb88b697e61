"""Which images the Anthropic and OpenAI APIs refuse, and with what 400, as their documentation describes.

- Anthropic Messages: an ``image`` block (only in user messages) with ``source`` ``{"type": "base64", "media_type",
  "data"}``; ``media_type`` one of image/jpeg, image/png, image/gif, image/webp, and it must match the bytes; the
  base64 text at most 5 MiB; at most 100 images a request.
- OpenAI Chat Completions: an ``image_url`` content part (only in user messages) whose ``url`` is an http(s) URL or
  a ``data:<mime>;base64,...`` URL of a PNG, JPEG, GIF or WebP image of at most 20 MB; a text-only model refuses
  any image ("image_url is only supported by certain models").
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from typing import Any

ANTHROPIC_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
ANTHROPIC_MAX_BASE64 = 5 * 1024 * 1024
ANTHROPIC_MAX_IMAGES = 100
OPENAI_MAX_BYTES = 20 * 1024 * 1024

Refusal = tuple[str, str | None]  # (error message, OpenAI error code)


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def image_error(wire: str, body: dict[str, Any], *, accepts_images: bool = True) -> Refusal | None:
    """The 400 the API would answer ``body`` with because of its images, or None."""
    check = _anthropic if wire == "anthropic" else _openai
    return check(body, accepts_images)


def _anthropic(body: dict[str, Any], accepts_images: bool) -> Refusal | None:
    count = 0
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict) or block.get("type") != "image":
                continue
            where = f"messages.{i}.content.{j}.image"
            count += 1
            if not accepts_images:
                return f"{where}: this model does not support image input", None
            if message.get("role") != "user":
                return f"{where}: image content blocks are only allowed in user messages", None
            source = block.get("source") or {}
            if source.get("type") != "base64":
                return f"{where}.source: the stand-in takes base64 sources only", None
            media_type, data = source.get("media_type"), str(source.get("data") or "")
            if media_type not in ANTHROPIC_TYPES:
                expected = "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                return f"{where}.source.base64.media_type: Input should be {expected}", None
            if len(data) > ANTHROPIC_MAX_BASE64:
                return (
                    f"{where}.source.base64: image exceeds 5 MB maximum: {len(data)} bytes > {ANTHROPIC_MAX_BASE64} "
                    "bytes",
                    None,
                )
            raw = _decode(data)
            if raw is None:
                return f"{where}.source.base64.data: invalid base64 data", None
            actual = sniff(raw)
            if actual != media_type:
                seen = f"a {actual} image" if actual else "not a supported image"
                return (
                    f"{where}.source.base64.data: The image was specified using the {media_type} media type, but the "
                    f"image appears to be {seen}",
                    None,
                )
    if count > ANTHROPIC_MAX_IMAGES:
        return f"Too many images in the request: {count} > {ANTHROPIC_MAX_IMAGES}", None
    return None


def _openai(body: dict[str, Any], accepts_images: bool) -> Refusal | None:
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            if not accepts_images:
                return "Invalid content type. image_url is only supported by certain models.", None
            if message.get("role") != "user":
                role = message.get("role")
                return (
                    f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user', but this "
                    f"message with role '{role}' contains an image URL.",
                    "invalid_value",
                )
            url = str((part.get("image_url") or {}).get("url") or "")
            if url.startswith(("http://", "https://")):
                continue
            head, sep, data = url.partition(";base64,")
            raw = _decode(data) if sep and head.startswith("data:") else None
            if raw is None:
                return "Invalid image URL: expected an http(s) URL or a base64 data URL.", "invalid_image_url"
            if len(raw) > OPENAI_MAX_BYTES:
                return f"Image too large: {len(raw)} bytes; images may be at most 20 MB.", "image_too_large"
            if sniff(raw) is None:
                return (
                    "You uploaded an unsupported image. Please make sure your image has of one the following formats: "
                    "['png', 'jpeg', 'gif', 'webp'].",
                    "invalid_image_format",
                )
    return None


def make_png(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real, tiny PNG of one colour (for tests: sizes and formats that an API accepts)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
