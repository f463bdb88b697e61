"""What both providers' streaming shares: reporting a call's growing argument to a ``ReplyPreview``, and telling
a stream cut short from a finished one.

A stream is only an earlier view of the same answer: the Completion is built from the whole stream exactly as
from the non-streamed response, and a stream that breaks is retried like any failed request (``bot.llm.retry``),
the preview starting over with the new attempt.
"""

from __future__ import annotations

from bot.llm.partial_json import StringFieldReader
from bot.llm.types import ReplyPreview

__all__ = ["PreviewFeed", "StreamInterrupted", "mentions_streaming"]


class StreamInterrupted(Exception):
    """A stream ended before the answer was complete (a cut connection, an error event, no final event);
    transient: the request is tried again."""


def mentions_streaming(message: str) -> bool:
    """Whether an error refusing a request is about streaming itself (a server that cannot stream): then the
    request is sent again without streaming."""
    return "stream" in message.lower()


class PreviewFeed:
    """Routes one attempt's streamed function calls to ``preview``: calls are keyed the way the provider numbers
    them (content block or tool call index); only calls to ``preview.tool`` are read, numbered in order."""

    def __init__(self, preview: ReplyPreview | None) -> None:
        self._preview = preview
        self._readers: dict[int, tuple[int, StringFieldReader]] = {}
        self._pending: dict[int, list[str]] = {}  # arguments that came before the call's name
        self._names: dict[int, str] = {}
        self._count = 0
        if preview is not None:
            preview.restart()

    def name(self, key: int, name: str) -> None:
        """The call ``key`` is to function ``name`` (a name sent in pieces is joined)."""
        preview = self._preview
        if preview is None or key in self._readers:
            return
        full = self._names.get(key, "") + name
        self._names[key] = full
        if full != preview.tool:
            return
        self._readers[key] = (self._count, StringFieldReader(preview.argument))
        self._count += 1
        for fragment in self._pending.pop(key, []):
            self.arguments(key, fragment)

    def arguments(self, key: int, fragment: str) -> None:
        """The next piece of call ``key``'s arguments JSON."""
        preview = self._preview
        if preview is None or not fragment:
            return
        entry = self._readers.get(key)
        if entry is None:
            if key not in self._names or preview.tool.startswith(self._names[key]):
                self._pending.setdefault(key, []).append(fragment)
            return
        index, reader = entry
        if reader.feed(fragment) and reader.value is not None:
            preview.grow(index, reader.value)
