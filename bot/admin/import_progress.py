"""The progress of a DM import, shown in one message that is edited as passages are stored.

A DM with files gets one status message at once ("Importing `report.pdf`… 0 of 40 passages"), one line per file.
While passages are stored the message is edited, at most once per ``interval`` (Discord and Slack rate-limit
edits); when every file is done the same message shows the result of each file. One message for all the files of a
DM, not one per file: they arrived together, the user reads one answer to one message, and one message means one
stream of edits under the platforms' per-channel rate limits.

An edit that fails (rate limit, message deleted) never stops the import: progress edits stop, the final result is
tried as an edit once more and, if that fails too, posted as a new message. The platform side is a
``StatusMessage`` (the adapters implement it with Discord's ``Message.edit`` and Slack's ``chat.update``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from bot.core.tasks import stop_task

__all__ = ["EDIT_INTERVAL", "ImportProgress", "StatusMessage"]

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0  # seconds between edits: Discord allows about 5 edits per 5 s per channel, Slack ~1 per second
STOP_WITHIN = 5.0  # seconds an edit in flight may take to finish when the import ends


class StatusMessage(Protocol):
    """One message on a platform that membot posts once and then edits."""

    async def post(self, text: str) -> bool:
        """Post ``text`` as a new message, which later edits change; False if it could not be posted."""
        ...

    async def edit(self, text: str) -> bool:
        """Replace the posted message's text; False if it could not (rate limited, deleted, never posted)."""
        ...


@dataclass
class _File:
    name: str  # as the platform should show it (quoted or escaped by the adapter)
    done: int = 0
    total: int | None = None
    started: bool = False
    result: str | None = None  # the final sentence for this file

    def line(self) -> str:
        if self.result is not None:
            return self.result
        if not self.started:
            return f"{self.name}: waiting."
        if self.total is None:
            return f"Importing {self.name}…"
        return f"Importing {self.name}… {self.done} of {self.total} passages"


class ImportProgress:
    """The status message of one DM's import; use as ``async with``, then ``start``/``advance``/``finish`` per file.

    Leaving the block delivers the final text (every file's result) in the same message, or in a new one when
    that message cannot be edited."""

    def __init__(
        self,
        message: StatusMessage,
        names: Sequence[str],
        *,
        interval: float = EDIT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._message = message
        self._files = [_File(name, started=index == 0) for index, name in enumerate(names)]  # the first at once
        self._interval = interval
        self._clock = clock
        self._changed = asyncio.Event()
        self._posted = False
        self._editable = True
        self._last_edit = float("-inf")
        self._shown = ""
        self._editor: asyncio.Task[None] | None = None

    def text(self) -> str:
        """What the message says now: one line per file."""
        return "\n".join(file.line() for file in self._files)

    def start(self, index: int) -> None:
        """File ``index`` is being fetched and read."""
        self._files[index].started = True
        self._changed.set()

    def advance(self, index: int) -> Callable[[int, int], None]:
        """The ``progress(done, total)`` callback for file ``index`` (``MemoryAdmin.import_document``'s)."""

        def progress(done: int, total: int) -> None:
            file = self._files[index]
            file.started, file.done, file.total = True, done, total
            self._changed.set()

        return progress

    def finish(self, index: int, result: str) -> None:
        """File ``index`` is done; ``result`` is its sentence in the final message."""
        self._files[index].result = result
        self._changed.set()

    async def __aenter__(self) -> ImportProgress:
        self._shown = self.text()
        self._posted = await self._safely(self._message.post, self._shown)
        self._last_edit = self._clock()
        if self._posted:
            self._editor = asyncio.create_task(self._edit_while_importing(), name="import-progress")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._editor is not None:
            await stop_task(self._editor, within=STOP_WITHIN)
        final = self.text()
        if self._posted and self._editable and final == self._shown:
            return
        if self._posted:
            await asyncio.sleep(max(0.0, self._last_edit + self._interval - self._clock()))
            if await self._safely(self._message.edit, final):
                return
        if not await self._safely(self._message.post, final):
            log.warning("the result of an import could not be delivered")

    async def _edit_while_importing(self) -> None:
        """Edit the message when something changed, at most once per interval, until an edit fails."""
        while self._editable:
            await self._changed.wait()
            await asyncio.sleep(max(0.0, self._last_edit + self._interval - self._clock()))
            self._changed.clear()
            text = self.text()
            if text == self._shown:
                continue
            self._editable = await self._safely(self._message.edit, text)
            self._last_edit = self._clock()
            self._shown = text

    @staticmethod
    async def _safely(action: Callable[[str], Awaitable[bool]], text: str) -> bool:
        """Run a post or an edit; an unexpected error counts as a failure (the import goes on)."""
        try:
            return await action(text)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a status message could not be posted or edited")
            return False
