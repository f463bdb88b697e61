"""Console adapter: each stdin line is one message; each send_message is printed on a line starting ``membot> ``.

Works interactively and piped. Notices from membot itself go to stderr, so stdout holds only the bot's words.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import BinaryIO, TextIO

from bot.events import InboundMessage, OutboundReply, ReplyKind

PREFIX = "membot> "
CONTINUATION = " " * len(PREFIX)

Handler = Callable[[InboundMessage, "ConsoleSink"], Awaitable[object]]


class ConsoleSink:
    """Prints the agent's messages to stdout and membot's notices to stderr."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err

    async def send(self, reply: OutboundReply) -> None:
        if reply.kind is ReplyKind.NOTICE:
            self._err.write(f"membot: {reply.text}\n")
            self._err.flush()
            return
        lines = reply.text.splitlines() or [""]
        self._out.write(PREFIX + lines[0] + "\n")
        for line in lines[1:]:
            self._out.write(CONTINUATION + line + "\n")
        self._out.flush()

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        yield


def decode_line(raw: bytes, line_number: int, err: TextIO) -> str:
    """Decode one stdin line as UTF-8; invalid bytes are replaced, and the user is told so."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        err.write(f"membot: line {line_number} is not valid UTF-8; undecodable bytes were replaced with U+FFFD.\n")
        err.flush()
        return raw.decode("utf-8", errors="replace")


def console_message(user: str, text: str) -> InboundMessage:
    """One console line as the runtime's normalized message (a private conversation with ``user``)."""
    return InboundMessage(
        platform="console",
        workspace_id=None,
        channel_id="console",
        author_id=user,
        author_name=user,
        text=text,
        is_dm=True,
        message_id=uuid.uuid4().hex,
    )


async def run_console(
    handle: Handler,
    user: str,
    *,
    stdin: BinaryIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> None:
    """Read messages until EOF and hand each to ``handle`` in order."""
    stdin = stdin or sys.stdin.buffer
    out = out or sys.stdout
    err = err or sys.stderr
    interactive = stdin.isatty()
    sink = ConsoleSink(out, err)
    line_number = 0
    while True:
        if interactive:
            err.write("you> ")
            err.flush()
        raw = await asyncio.to_thread(stdin.readline)
        if not raw:
            break
        line_number += 1
        text = decode_line(raw.rstrip(b"\r\n"), line_number, err)
        if interactive and not text.strip():
            continue
        await handle(console_message(user, text), sink)
    if interactive:
        err.write("\n")
