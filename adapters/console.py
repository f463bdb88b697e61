"""Console adapter: each stdin line is one message; each send_message is printed on a line starting ``membot> ``.

Works interactively and piped. Notices from membot itself go to stderr, so stdout holds only the bot's words
(also the "still thinking" line shown when a turn takes a while). Stdin is read on the event loop, never in a
thread blocked in ``readline``, so Ctrl-C at the prompt quits at once; during a turn the answer is finished first,
and a second Ctrl-C quits at once whatever is running (``ConsoleInterrupts``).

Under ``membot run`` the chat is a platform (``ConsoleAdapter``): reminders and proactive messages for its user are
printed on lines starting ``membot (unprompted)> ``; at an interactive prompt the ``you> `` line is cleared first
and drawn again after."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import BinaryIO, TextIO

from bot.core.events import AgentKey, InboundMessage, OutboundReply, ReplyAddress, ReplyKind

PREFIX = "membot> "
UNPROMPTED_PREFIX = "membot (unprompted)> "
PROMPT = "you> "
CLEAR_LINE = "\r\x1b[K"  # back to the line's start and erase it (a terminal)
CONTINUATION = " " * len(PREFIX)
THINKING_NOTICE = "membot: still thinking…"
READ_CHUNK = 65536

Handler = Callable[[InboundMessage, "ConsoleSink"], Awaitable[object]]


class ConsoleSink:
    """Prints the agent's messages to stdout and membot's notices to stderr."""

    def __init__(self, out: TextIO, err: TextIO, *, working_after: float = 3.0) -> None:
        self._out = out
        self._err = err
        self._working_after = working_after

    async def send(self, reply: OutboundReply) -> None:
        if reply.kind is ReplyKind.NOTICE:
            self._err.write(f"membot: {reply.text}\n")
            self._err.flush()
            return
        self._out.write(framed(PREFIX, reply.text))
        self._out.flush()

    @asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """One line on stderr once the turn has taken ``working_after`` seconds."""
        notice = asyncio.create_task(self._thinking_after(self._working_after))
        try:
            yield
        finally:
            notice.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notice

    async def _thinking_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._err.write(THINKING_NOTICE + "\n")
        self._err.flush()


def framed(prefix: str, text: str) -> str:
    """``text`` as printed: the first line after ``prefix``, the others indented to match."""
    lines = text.splitlines() or [""]
    return "".join(f"{prefix if index == 0 else ' ' * len(prefix)}{line}\n" for index, line in enumerate(lines))


class Prompt:
    """The ``you> `` prompt of an interactive chat, and printing beside it without mixing into the line being
    typed: the prompt line is cleared (on a terminal; else a line break ends it), the text printed, the prompt
    drawn again. What the user had typed stays in the terminal's line buffer and is sent on Enter."""

    def __init__(self, out: TextIO, err: TextIO, *, interactive: bool) -> None:
        self._out = out
        self._err = err
        self._interactive = interactive
        self.showing = False

    def show(self) -> None:
        if self._interactive:
            self._err.write(PROMPT)
            self._err.flush()
            self.showing = True

    def answered(self) -> None:
        """A line was read: the prompt is no longer on screen."""
        self.showing = False

    def print_aside(self, text: str) -> None:
        """Print ``text`` (whole lines) on stdout, keeping the prompt intact."""
        if self.showing:
            self._err.write(CLEAR_LINE if _is_terminal(self._err) else "\n")
            self._err.flush()
        self._out.write(text)
        self._out.flush()
        if self.showing:
            self._err.write(PROMPT)
            self._err.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class StdinLines:
    """Lines from a binary stream, read on the event loop: a pipe or terminal through ``add_reader`` (no thread
    blocked in ``readline``, so cancelling the reader takes effect at once), a file or in-memory stream directly."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._fd = _selectable_fd(stream)
        self._buffer = bytearray()
        self._eof = False

    async def readline(self) -> bytes:
        """The next line with its newline; the last line may lack one; b"" at end of input."""
        if self._fd is None:
            return self._stream.readline()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if self._eof:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            chunk = await self._read_chunk(self._fd)
            if chunk:
                self._buffer.extend(chunk)
            else:
                self._eof = True

    @staticmethod
    async def _read_chunk(fd: int) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            return os.read(fd, READ_CHUNK)  # readable: returns what is there without blocking
        except OSError:
            return b""


def _selectable_fd(stream: BinaryIO) -> int | None:
    """The stream's descriptor when the event loop can wait on it (pipes, terminals, sockets), else None."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode):
        return fd
    return None  # a regular file: reading never waits


def decode_line(raw: bytes, line_number: int, err: TextIO) -> str:
    """Decode one stdin line as UTF-8; invalid bytes are replaced, and the user is told so."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        err.write(f"membot: line {line_number} is not valid UTF-8; undecodable bytes were replaced with U+FFFD.\n")
        err.flush()
        return raw.decode("utf-8", errors="replace")


class ConsoleInterrupts:
    """Ctrl-C in the console chat. At the prompt it cancels ``main`` (the chat closes cleanly). During a turn the
    answer is finished first (a notice says so), then ``main`` is cancelled. A second Ctrl-C quits at once,
    whatever is running or closing: nothing is lost, since the message was stored before the model was asked and
    the outage journal is written durably (``force`` defaults to ``os._exit(130)``)."""

    FINISHING = "membot: finishing this answer, then quitting (Ctrl-C again to quit now)."
    STOPPED = "membot: stopped."

    def __init__(self, main: asyncio.Task[object], err: TextIO, force: Callable[[], object] | None = None) -> None:
        self._main = main
        self._err = err
        self._force = force or (lambda: os._exit(130))
        self.interrupted = False
        self._turns = 0

    @classmethod
    def install(cls, err: TextIO) -> ConsoleInterrupts:
        """Handle SIGINT on the running loop for the current task (the chat's main task)."""
        main = asyncio.current_task()
        assert main is not None, "install from inside the chat's task"
        interrupts = cls(main, err)
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupts.on_interrupt)
        return interrupts

    def on_interrupt(self) -> None:
        if self.interrupted:
            self._say(self.STOPPED)
            sys.stdout.flush()
            self._force()
            return
        self.interrupted = True
        if self._turns:
            self._say(self.FINISHING)
        else:
            self._main.cancel()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Around one turn: a Ctrl-C meanwhile waits for its end."""
        self._turns += 1
        try:
            yield
        finally:
            self._turns -= 1
            if self.interrupted and not self._turns:
                self._main.cancel()

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._err.write(f"\n{line}\n")
            self._err.flush()


def console_agent(name: str) -> AgentKey:
    """The agent of a console user: ``console:<name>`` (no workspace)."""
    return AgentKey("console", None, name)


def console_message(user: str, text: str) -> InboundMessage:
    """One console line as the runtime's normalized message (a private conversation with ``user``)."""
    return InboundMessage(
        agent_key=console_agent(user),
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
    working_after: float = 3.0,
    interrupts: ConsoleInterrupts | None = None,
    prompt: Prompt | None = None,
) -> None:
    """Read messages until EOF and hand each to ``handle`` in order (``working_after``: seconds into a turn before
    "still thinking" is shown; ``interrupts``: a Ctrl-C during a turn waits for its end; ``prompt``: the prompt
    shared with whatever prints beside the chat)."""
    stdin = stdin or sys.stdin.buffer
    out = out or sys.stdout
    err = err or sys.stderr
    interactive = stdin.isatty()
    prompt = prompt or Prompt(out, err, interactive=interactive)
    sink = ConsoleSink(out, err, working_after=working_after)
    lines = StdinLines(stdin)
    line_number = 0
    while True:
        prompt.show()
        raw = await lines.readline()
        prompt.answered()
        if not raw:
            break
        line_number += 1
        text = decode_line(raw.rstrip(b"\r\n"), line_number, err)
        if interactive and not text.strip():
            continue
        if interrupts is None:
            await handle(console_message(user, text), sink)
            continue
        async with interrupts.turn():
            await handle(console_message(user, text), sink)
    if interactive:
        err.write("\n")


class ConsoleAdapter:
    """The console chat as a platform of ``membot run``: ``run`` chats until the input ends; ``send_direct`` prints
    a reminder or proactive message for the console's user, marked ``membot (unprompted)> ``."""

    platform = "console"

    def __init__(
        self,
        handle: Handler,
        user: str,
        *,
        stdin: BinaryIO | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
        working_after: float = 3.0,
    ) -> None:
        self._handle = handle
        self._user = user
        self._stdin = stdin or sys.stdin.buffer
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._working_after = working_after
        self._prompt = Prompt(self._out, self._err, interactive=self._stdin.isatty())

    async def run(self) -> None:
        await run_console(
            self._handle,
            self._user,
            stdin=self._stdin,
            out=self._out,
            err=self._err,
            working_after=self._working_after,
            prompt=self._prompt,
        )

    async def send_direct(self, address: ReplyAddress, text: str) -> None:
        """Print ``text`` in the running chat. Raises LookupError for another console user (whose reminder waits
        for a console of theirs)."""
        if address.user_id != self._user:
            raise LookupError("this console chats with someone else")
        self._prompt.print_aside(framed(UNPROMPTED_PREFIX, text))
