"""Provider-neutral chat types: what the agent exchanges with any model.

The Anthropic and OpenAI modules translate these to and from their wire formats; nothing else in membot knows
either format.
"""

from __future__ import annotations

import json
from base64 import b64encode
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for. ``arguments`` is the raw JSON text, which may be malformed."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ImageInput:
    """An image the model is shown with a user message: PNG, JPEG, GIF or WebP bytes (``bot.core.images``).

    Transient: it exists for the model calls of the turn it came with and is never stored (``ChatMessage.to_json``
    leaves it out). ``tokens`` is what the image costs in the prompt, estimated from its size."""

    media_type: str
    data: bytes = field(repr=False)
    name: str = ""
    tokens: int = 0

    @cached_property
    def base64(self) -> str:
        """The bytes as base64 text, encoded once (every model call of a turn sends them)."""
        return b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class ChatMessage:
    """One message of the conversation queue.

    - ``user``: text from the user or a system event (alerts and heartbeats are packed as user text);
    - ``assistant``: inner monologue in ``content`` plus the ``tool_calls`` it made;
    - ``tool``: the result of the call ``tool_call_id`` to function ``name``.

    ``private``: said or done in a private context (a DM, the console, a heartbeat); a turn in a channel does not
    see it (``bot.core.context``). ``message_id``: the platform message a user entry stores (a replayed message is
    recognised by it and not queued twice). The providers ignore both. ``images``: shown to the model with a user
    message during one turn only; never serialized (the queue in Redis holds no image bytes).
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    private: bool = False
    message_id: str | None = None
    images: tuple[ImageInput, ...] = ()

    def to_json(self) -> str:
        data = asdict(replace(self, images=()))
        del data["images"]
        if not self.private:
            del data["private"]
        if self.message_id is None:
            del data["message_id"]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ChatMessage:
        data = json.loads(text)
        calls = tuple(ToolCall(**c) for c in data.get("tool_calls") or ())
        return cls(
            role=data["role"],
            content=data.get("content") or "",
            tool_calls=calls,
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            private=bool(data.get("private", False)),
            message_id=data.get("message_id"),
        )


@dataclass(frozen=True)
class ToolSpec:
    """A function offered to the model: name, description and JSON schema of its parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class SystemPrompt:
    """What membot tells the model besides the conversation, ordered from most to least stable (prompt caching).

    - ``static``: the instructions; never change (cached with the tools);
    - ``dynamic``: core memory and the summary; change only on a memory edit or an eviction (cached);
    - ``volatile``: the status note (clock, memory counts) that changes every call. The providers send it at the
      very end of the prompt, after the last cache breakpoint, so it never breaks the cached prefix;
    - ``cache_key``: which prompt cache the request belongs to (one per agent and scope; not secret, not text the
      model sees): OpenAI's ``prompt_cache_key``.
    """

    static: str
    dynamic: str = ""
    volatile: str = ""
    cache_key: str = ""

    def text(self) -> str:
        """``static`` and ``dynamic`` (the system message proper; ``volatile`` is placed by each provider)."""
        return f"{self.static}\n\n{self.dynamic}" if self.dynamic else self.static


@dataclass(frozen=True)
class Usage:
    """Tokens a provider reported for one call. ``input_tokens`` is the whole prompt, cached parts included;
    ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of it read from and written to the prompt cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """The model's answer: inner monologue text and the function calls it made."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None


class ReplyPreview(Protocol):
    """Told, while a completion streams, what the model has written so far of each call to ``tool`` (the
    ``argument`` string of it): how a reply is shown as it grows. Calls are numbered from 0 in the order the model
    makes them within one completion. ``restart``: a new attempt begins (a retry, or the next step's completion),
    so what was reported before is void until reported again. Methods must return at once (no I/O)."""

    tool: str
    argument: str

    def restart(self) -> None: ...

    def grow(self, index: int, text: str) -> None: ...


class ModelError(Exception):
    """The model could not be reached or refused the request after retries."""


class RequestRejected(ModelError):
    """The provider refused the request itself (a 4xx that is not a rate limit): sent again unchanged, it fails
    again. The turn may go on with a different request (e.g. without the images the model refused)."""


class ContextOverflowError(ModelError):
    """The provider said the prompt is longer than the model's context window."""
