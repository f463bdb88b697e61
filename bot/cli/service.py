"""Commands that run membot or look at it running: ``chat``, ``run``, ``jobs list``, ``doctor``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.app import App, open_app, warm_tokenizer
from bot.cli.common import (
    app,
    command_settings,
    console_name,
    err,
    jobs_app,
    parse_agent_key,
    run_work,
    stores_settings,
)
from bot.core.ports import Embedder
from bot.stores import list_jobs


async def _warm_up(embedder: Embedder) -> None:
    """Load the tokenizer and load or reach the embedder now; when the embedder is down, say so once and chat on
    (searches use words meanwhile)."""
    await warm_tokenizer()
    try:
        await embedder.embed(["warm-up"])
    except Exception as exc:
        err.print(
            f"membot: embeddings are unavailable ({type(exc).__name__}); chatting on, searching by words until "
            "they answer. New messages are kept and indexed later.",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def chat(
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Your name; your memory lives under console:NAME.")
    ] = None,
) -> None:
    """Chat with membot in this terminal (also works with piped input: one message per line)."""
    from adapters.console import ConsoleInterrupts, run_console

    settings = stores_settings()
    key = parse_agent_key(f"console:{console_name(user)}")

    async def work() -> None:
        interrupts = ConsoleInterrupts.install(sys.stderr)
        try:
            await chat_until_done(interrupts)
        except asyncio.CancelledError:
            if interrupts.interrupted:
                raise KeyboardInterrupt from None  # exit 130, as an interrupted command does
            raise

    async def chat_until_done(interrupts: ConsoleInterrupts) -> None:
        async with open_app(settings) as running:
            # Load the embedding model while the user types, not when their first message arrives.
            warm_up = asyncio.create_task(_warm_up(running.stores.embedder))
            waiting = await running.resume_journal()  # answers left by a stopped process are printed here
            if waiting:
                err.print(f"membot: answering {waiting} saved messages from before.", highlight=False)
            if sys.stdin.isatty():
                err.print(f"membot is listening as [bold]{key}[/]. Ctrl-D to leave.", highlight=False)
            await run_console(
                running.runtime.handle, key.user, working_after=settings.working_notice_after, interrupts=interrupts
            )
            await warm_up
            await _finish_journal(running)

    run_work(work)


async def _finish_journal(running: App) -> None:
    """At the end of input, wait a while for messages kept during a Redis outage to be answered; what is still
    waiting after that stays in the journal and is answered at the next start."""
    outage = running.outage
    if not outage.backlogged:
        return
    within = max(30.0, 3 * running.settings.redis_retry_seconds)
    err.print(f"membot: waiting up to {within:g}s for my memory to answer your saved messages.", highlight=False)
    try:
        async with asyncio.timeout(within):
            await outage.wait_replayed()
    except TimeoutError:
        err.print("membot: my memory is still unreachable; your messages are saved and answered next time.")


@app.command()
def run(
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Name for the console chat (when no platform is set).")
    ] = None,
) -> None:
    """Start every chat platform whose credentials are set, plus the heartbeat scheduler (Ctrl-C stops).

    With no platform configured and a terminal attached (or lines piped in), a console chat runs beside the
    scheduler instead; the end of its input stops membot.
    """
    from adapters.console import ConsoleAdapter
    from bot.ops.serve import serve

    key = parse_agent_key(f"console:{console_name(user)}")
    settings = stores_settings()
    interactive = _console_input() and not (settings.discord_token or settings.slack_bot_token)

    async def work() -> int:
        async with open_app(settings) as running:
            console = ConsoleAdapter(running.runtime.handle, key.user, working_after=settings.working_notice_after)
            if interactive:
                err.print(f"membot is listening as [bold]{key}[/], with heartbeats. Ctrl-D to leave.", highlight=False)

            def notify(text: str) -> None:
                err.print(f"membot: {text}", highlight=False, soft_wrap=True)

            return await serve(running, notify, console=console if interactive else None)

    raise typer.Exit(run_work(work))


def _console_input() -> bool:
    """Whether stdin brings messages: a terminal, a pipe or a file (not /dev/null, as under a service manager)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):  # no stdin at all
        return False
    return sys.stdin.isatty() or stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


@jobs_app.command("list")
def jobs_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Show every scheduled heartbeat job (reflection, consolidation) and when it runs next."""
    settings = command_settings()
    jobs = run_work(lambda: list_jobs(settings))
    if as_json:
        typer.echo(json.dumps([job.as_dict() for job in jobs], indent=2))
        return
    if not jobs:
        typer.echo("no heartbeat jobs are scheduled")
        return
    table = Table("job id", "kind", "agent", "next run (UTC)", "trigger")
    for job in jobs:
        when = f"{job.next_run_time:%Y-%m-%d %H:%M:%S}" if job.next_run_time else "paused"
        table.add_row(job.id, job.kind, job.agent, when, job.trigger)
    Console(width=200).print(table, highlight=False)


@app.command()
def doctor() -> None:
    """Check configuration and connections, and say what to fix."""
    from bot.ops.doctor import run_checks

    settings = command_settings()  # the data directory is one of the checks
    results = asyncio.run(run_checks(settings))
    failed = False
    for name, ok, detail in results:
        mark = "[green]ok[/]" if ok else "[red]FAIL[/]"
        Console().print(f"{mark}  {name}: {detail}", highlight=False, soft_wrap=True)
        failed = failed or not ok
    raise typer.Exit(1 if failed else 0)
