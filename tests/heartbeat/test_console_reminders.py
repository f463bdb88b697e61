"""Reminders (and proactive messages) for the console user of `membot run` appear in the running console chat.

The real `membot run` runs on a pseudo-terminal (stdin, stdout and stderr, as in a terminal window): the reminder
is printed marked ``membot (unprompted)> ``, the ``you> `` line being typed is cleared first and drawn again
after, and what the user had half typed is still sent when they press Enter.
"""

from __future__ import annotations

import asyncio
import io
import os
import pty
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from adapters.console import CLEAR_LINE, PROMPT, UNPROMPTED_PREFIX, ConsoleAdapter, console_agent, console_message
from bot.app import open_app
from bot.core.events import Scope, utc_now
from bot.ops.reminders import reminder_job_id
from bot.ops.serve import serve
from bot.settings import Settings
from bot.stores import list_jobs
from tests.faults.model_faults import MEMBOT, chat_env
from tests.faults.test_console_faults import read_until
from tests.heartbeat.test_reminders import book, local_iso
from tests.scenario import RecordingSink, eventually


def test_a_reminder_is_printed_in_the_running_console_chat_without_breaking_the_prompt(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    controller, terminal = pty.openpty()
    run = subprocess.Popen(
        [*MEMBOT, "run", "--user", "sam"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=chat_env(settings),
        cwd=tmp_path,
    )
    os.close(terminal)
    try:
        seen = read_until(controller, PROMPT.encode())
        due = utc_now() + timedelta(seconds=4)
        os.write(controller, f"remind: {local_iso(due, 'UTC')} Stretch your legs.\n".encode())
        seen = read_until(controller, b"Set: Reminder", seen)
        seen = read_until(controller, PROMPT.encode(), seen[seen.index(b"Set: Reminder") :])
        os.write(controller, b"hel")  # half typed when the reminder comes
        reminder = f"{UNPROMPTED_PREFIX}⏰ Reminder: Stretch your legs.".encode()
        seen = read_until(controller, reminder + b"\r\n" + PROMPT.encode(), seen, within=60)
        at = seen.index(reminder)
        assert seen[:at].endswith(PROMPT.encode() + b"hel" + CLEAR_LINE.encode()), seen
        os.write(controller, b"lo\n")
        seen = read_until(controller, b"membot> echo: hello", seen)
        os.write(controller, b"\x04")  # Ctrl-D at the prompt: the chat ends, and `membot run` with it
        assert run.wait(timeout=60) == 0
        tail = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the other side of the terminal closed
                break
            if not chunk:
                break
            tail += chunk
        assert b"Traceback" not in seen + tail
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        os.close(controller)


async def test_the_console_delivers_only_its_own_users_reminders(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    read, write = os.pipe()
    out, err = io.StringIO(), io.StringIO()
    async with open_app(settings) as app:
        assert app.runtime is not None
        with os.fdopen(read, "rb", buffering=0) as stdin:
            console = ConsoleAdapter(app.runtime.handle, "sam", stdin=stdin, out=out, err=err)
            serving = asyncio.create_task(serve(app, lambda _: None, adapters=[], console=console))
            os.write(write, b"hello\n")  # Sam and Ann both last spoke on the console
            await eventually(lambda: "membot> echo: hello" in out.getvalue(), what="the answer")
            await app.runtime.handle(console_message("ann", "hi"), RecordingSink())
            soon = utc_now() + timedelta(seconds=1)
            mine = await book(app).schedule(console_agent("sam"), soon, "Mine.", scope=Scope.PRIVATE)
            theirs = await book(app).schedule(console_agent("ann"), soon, "Ann's.", scope=Scope.PRIVATE)
            await eventually(lambda: "Mine." in out.getvalue(), within=30, what="Sam's reminder")

            async def retried() -> bool:
                ids = [job.id for job in await list_jobs(settings) if job.kind == "remind"]
                return ids == [f"{reminder_job_id(theirs)}~1"]

            await eventually(retried, within=30, what="Ann's reminder kept for a console of hers")
            os.close(write)  # Ctrl-D
            assert await asyncio.wait_for(serving, 30) == 0
    assert f"{UNPROMPTED_PREFIX}⏰ Reminder: Mine.\n" in out.getvalue()
    assert "Ann's." not in out.getvalue()
    assert mine.id != theirs.id
