"""``membot memory``: show, export, reset, erase, forget, history, rollback, proactive, timezone, reminders, reindex,
migrate.

Memory commands are the operator's: not checked by ``bot.admin.authz``, audited as ``cli``. Every memory command
given an agent with nothing stored exits 1 with one line saying so."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bot.admin.audit import CLI_CAUSE, HistoryItem
from bot.admin.memory import ForgetCandidate, MemoryView, UnknownAgent
from bot.admin.repair import RollbackResult
from bot.app import open_memory_app
from bot.cli.common import command_settings, err, fail, memory_app, parse_agent_key, run_work, stores_settings
from bot.core.events import AgentKey, utc_now
from bot.core.memory_types import Reminder
from bot.runtime.proactive import InvalidProactiveSetting, ProactivePolicy, TimeZoneSetting
from bot.stores import open_proactive_control, open_reminders, open_repair


def _print_view(view: MemoryView) -> None:
    console = Console()
    console.print(f"[bold]{view.agent}[/]", highlight=False)
    for block in view.blocks:
        console.print(f"\n[bold]{block.label}[/] ({block.chars}/{block.limit} chars)", highlight=False)
        console.print(block.value, highlight=False, markup=False)
    table = Table(show_header=False, box=None)
    table.add_row("messages in context queue", str(view.queue_length))
    table.add_row("recall entries", str(view.recall_count))
    table.add_row("archival notes", str(view.archival_count))
    table.add_row("core last modified", view.last_modified.isoformat() if view.last_modified else "never")
    if view.quarantined:
        table.add_row("unreadable items set aside", f"{view.quarantined} (see `membot memory export`)")
    console.print()
    console.print(table)
    if view.summary:
        console.print("\n[bold]summary of evicted messages[/]", highlight=False)
        console.print(view.summary, highlight=False, markup=False)


@memory_app.command("show")
def memory_show(
    agent_key: Annotated[str, typer.Argument(help="e.g. console:alice, discord:dm:1234, slack:T01:U02")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show an agent's core memory and how much it remembers."""
    key = parse_agent_key(agent_key)
    settings = stores_settings()

    async def work() -> MemoryView | dict[str, int]:
        async with open_memory_app(settings) as running:
            try:
                return await running.admin.show(key)
            except UnknownAgent:  # reset or erased: say what is kept (UnknownAgent again when nothing is)
                return await running.admin.remains(key)

    view = run_work(work)
    if isinstance(view, dict):
        _print_remains(key, view, as_json)
    elif as_json:
        typer.echo(json.dumps(view.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_view(view)


def _print_remains(key: AgentKey, kept: dict[str, int], as_json: bool) -> None:
    hint = (
        f"`membot memory history {key}` lists the changes, `membot memory rollback {key} --to N` brings core memory "
        f"back, `membot memory erase {key} --yes` removes what is kept"
    )
    if as_json:
        typer.echo(json.dumps({"agent": str(key), "memory": None, "kept": kept, "hint": hint}, indent=2))
        return
    typer.echo(
        f"No memory is stored for {key} (it was reset or erased). Kept: {kept['core_versions']} core version(s) "
        f"and {kept['audit_entries']} audit entr{'y' if kept['audit_entries'] == 1 else 'ies'}.\n{hint}."
    )


@memory_app.command("export")
def memory_export(
    agent_key: Annotated[str, typer.Argument(help="The agent whose memory to export.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Accepted for symmetry; export is always JSON.")] = True,
) -> None:
    """Export everything stored about an agent as one JSON document."""
    key = parse_agent_key(agent_key)
    settings = stores_settings()

    async def work() -> dict[str, Any]:
        async with open_memory_app(settings) as running:
            return await running.admin.export(key)

    document = json.dumps(run_work(work), indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(document)
    else:
        output.write_text(document + "\n", encoding="utf-8")
        err.print(f"exported {key} to {output}", highlight=False)


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail("refusing to erase memory without confirmation; pass --yes", 2)
    typer.confirm(question, abort=True)


@memory_app.command("reset")
def memory_reset(
    agent_key: Annotated[str, typer.Argument(help="The agent whose memory to clear.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was removed as JSON.")] = False,
) -> None:
    """Clear what membot remembers about an agent (core, queue, summary, recall, archival, heartbeats); the audit
    trail and core versions stay, so `memory rollback` can bring core memory back. `memory erase` removes all."""
    key = parse_agent_key(agent_key)
    settings = stores_settings()
    _confirm(yes, f"Clear all memory of {key}? Recall and archival memory cannot be brought back")

    async def work() -> dict[str, int]:
        async with open_memory_app(settings) as running:
            return await running.admin.reset(key, cause=CLI_CAUSE)

    _print_removed(key, run_work(work), as_json, "cleared")


@memory_app.command("erase")
def memory_erase(
    agent_key: Annotated[str, typer.Argument(help="The agent whose memory to erase.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was removed as JSON.")] = False,
) -> None:
    """Erase everything stored about an agent: memory, core versions, audit trail (but the record of this erase),
    heartbeat jobs, rate-limit and dedupe keys."""
    key = parse_agent_key(agent_key)
    settings = stores_settings()
    _confirm(yes, f"Erase everything stored about {key}? This cannot be undone")

    async def work() -> dict[str, int]:
        async with open_memory_app(settings) as running:
            return await running.admin.erase(key, cause=CLI_CAUSE)

    _print_removed(key, run_work(work), as_json, "erased")


@memory_app.command("forget")
def memory_forget(
    agent_key: Annotated[str, typer.Argument(help="The agent whose memories to forget.")],
    words: Annotated[str, typer.Argument(help="What to forget, e.g. 'bank PIN'.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was forgotten as JSON.")] = False,
) -> None:
    """Forget what matches WORDS: matching recall messages (also those not indexed yet) and archival notes, core
    lines containing the words (whole lines), and the sentences about them in the queue and both summaries."""
    key = parse_agent_key(agent_key)
    if not words.strip():
        raise fail("say what to forget: WORDS is empty", 2)
    settings = stores_settings()

    async def work() -> tuple[list[ForgetCandidate], int]:
        async with open_memory_app(settings) as running:
            candidates = await running.admin.forget_candidates(key, words)
            if not candidates:
                return candidates, 0
            if not yes:
                for candidate in candidates:
                    err.print(f"  {candidate.store}: {candidate.text[:200]}", highlight=False, markup=False)
                _confirm(False, f"Forget these {len(candidates)} item(s) of {key}? This cannot be undone")
            return candidates, await running.admin.forget(key, candidates, cause=CLI_CAUSE)

    candidates, removed = run_work(work)
    if as_json:
        stores = sorted({c.store for c in candidates})
        typer.echo(json.dumps({"agent": str(key), "matched": len(candidates), "removed": removed, "stores": stores}))
    elif not candidates:
        typer.echo(f"nothing of {key} matches {words!r}")
    else:
        typer.echo(f"forgot {removed} item(s) of {key} matching {words!r}")


def _print_removed(key: AgentKey, removed: dict[str, int], as_json: bool, verb: str) -> None:
    if as_json:
        typer.echo(json.dumps({"agent": str(key), "removed": removed}))
    else:
        typer.echo(f"{verb} {key}: " + ", ".join(f"{count} {store}" for store, count in removed.items()))


@memory_app.command("history")
def memory_history(
    agent_key: Annotated[str, typer.Argument(help="The agent whose memory changes to list.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200, help="How many changes, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """List the audit trail: every memory write, newest first, with its cause and the core lines it changed.
    Needs Redis only: works while `membot run` is running."""
    key = parse_agent_key(agent_key)
    settings = command_settings()

    async def work() -> list[HistoryItem]:
        async with open_repair(settings) as repair:
            await repair.require(key)
            return await repair.history(key, limit=limit)

    items = run_work(work)
    if as_json:
        typer.echo(json.dumps([item.as_dict() for item in items], indent=2, ensure_ascii=False))
        return
    if not items:
        typer.echo(f"no memory changes are recorded for {key}")
    for item in items:
        typer.echo(item.headline)
        for line in item.change_lines(limit=10_000):
            typer.echo(f"    {line}")


@memory_app.command("rollback")
def memory_rollback(
    agent_key: Annotated[str, typer.Argument(help="The agent whose core memory to restore.")],
    to: Annotated[int, typer.Option("--to", min=1, help="The core version to restore (vN in `memory history`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore core memory as it was at a version; the rollback is itself a new version (undo it the same way).
    Takes the agent's lock (waits for a turn in progress); needs Redis only: works while `membot run` is running."""
    key = parse_agent_key(agent_key)
    settings = command_settings()

    async def work() -> RollbackResult:
        async with open_repair(settings) as repair:
            await repair.require(key)
            return await repair.rollback(key, to, cause=CLI_CAUSE)

    result = run_work(work)
    if as_json:
        blocks = {b.label: b.value for b in result.blocks}
        typer.echo(json.dumps({"agent": str(key), "to": result.to, "version": result.version, "core": blocks}))
        return
    typer.echo(f"{key}: core memory is back to version {result.to} (now version {result.version})")
    for block in result.blocks:
        typer.echo(f"\n[{block.label}]\n{block.value}")


class Switch(StrEnum):
    on = "on"
    off = "off"


@memory_app.command("proactive")
def memory_proactive(
    agent_key: Annotated[str, typer.Argument(help="The user's agent, e.g. discord:dm:1234.")],
    state: Annotated[Switch, typer.Argument(help="on: membot may message this user between conversations.")],
    quiet_hours: Annotated[
        str | None, typer.Option("--quiet-hours", help="No messages in this local time range, e.g. 22-08, or none.")
    ] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="The user's time zone, e.g. Europe/Paris.")] = None,
    max_per_day: Annotated[int | None, typer.Option("--max-per-day", help="At most this many messages a day.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the resulting setting as JSON.")] = False,
) -> None:
    """Turn proactive messages (sent by reflections, opt-in) on or off for one user."""
    key = parse_agent_key(agent_key)
    settings = command_settings()

    async def work() -> ProactivePolicy:
        async with open_repair(settings) as repair:
            await repair.require(key)  # membot never talked with this user: nothing to send them
        async with open_proactive_control(settings) as control:
            return await control.set(
                key, state is Switch.on, quiet_hours=quiet_hours, timezone=timezone, max_per_day=max_per_day
            )

    try:
        policy = run_work(work)
    except InvalidProactiveSetting as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        quiet = str(policy.quiet_hours) if policy.quiet_hours else None
        document = {"agent": str(key), "enabled": policy.enabled, "max_per_day": policy.max_per_day}
        document.update(quiet_hours=quiet, timezone=policy.timezone)
        typer.echo(json.dumps(document))
    else:
        typer.echo(f"proactive messages for {key}: {policy.describe()}")


@memory_app.command("timezone")
def memory_timezone(
    agent_key: Annotated[str, typer.Argument(help="The user's agent, e.g. discord:dm:1234.")],
    zone: Annotated[str | None, typer.Argument(help="Set it to this IANA time zone, e.g. Europe/Berlin.")] = None,
) -> None:
    """Show or set the time zone a user's reminders and quiet hours use."""
    key = parse_agent_key(agent_key)
    settings = command_settings()

    async def work() -> TimeZoneSetting:
        async with open_repair(settings) as repair:
            await repair.require(key)
        async with open_proactive_control(settings) as control:
            return await control.timezone(key, zone)

    try:
        setting = run_work(work)
    except InvalidProactiveSetting as exc:
        raise fail(str(exc), 2) from None
    typer.echo(f"time zone of {key}: {setting.describe(utc_now())}")


@memory_app.command("reminders")
def memory_reminders(
    agent_key: Annotated[str, typer.Argument(help="The user's agent, e.g. slack:T01:U02.")],
    cancel: Annotated[str | None, typer.Option("--cancel", help="Cancel the reminder with this id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """List a user's pending reminders (set by the model when asked), or cancel one."""
    key = parse_agent_key(agent_key)
    settings = command_settings()

    async def work() -> list[Reminder]:
        async with open_repair(settings) as repair:
            await repair.require(key)
        async with open_reminders(settings) as book:
            pending = await book.pending(key)
            if cancel is None:
                return pending
            chosen = [r for r in pending if r.id == cancel.strip()]
            if not chosen or not await book.cancel(key, chosen[0].id):
                raise fail(f"{key} has no pending reminder {cancel!r} (`membot memory reminders {key}` lists them)")
            return chosen

    reminders = run_work(work)
    if as_json:
        typer.echo(
            json.dumps({"agent": str(key), "cancelled" if cancel else "reminders": [r.as_dict() for r in reminders]})
        )
    elif cancel is not None:
        typer.echo(f"cancelled reminder {reminders[0].id} of {key} ({reminders[0].local_due()}: {reminders[0].text})")
    elif not reminders:
        typer.echo(f"{key} has no pending reminders")
    else:
        table = Table("id", "due (local)", "due (UTC)", "text")
        for reminder in reminders:
            table.add_row(reminder.id, reminder.local_due(), f"{reminder.due:%Y-%m-%d %H:%M}", reminder.text)
        Console().print(table)


@memory_app.command("reindex")
def memory_reindex() -> None:
    """Rebuild the search vectors of recall and archival memory after an upgrade (stop membot first)."""
    from bot.stores import reindex_memory

    settings = stores_settings()

    def progress(name: str, done: int, total: int) -> None:
        err.print(f"{name}: {done}/{total}", end="\r", highlight=False)

    done = run_work(lambda: reindex_memory(settings, progress))
    if not done:
        typer.echo("Nothing to do: every collection is already indexed by this membot.")
    for name, count in done.items():
        typer.echo(f"{name}: {count} points reindexed")


@memory_app.command("migrate")
def memory_migrate() -> None:
    """Move an embedded store of membot before Qdrant Edge into Qdrant Edge (stop membot first; a start does it too)."""
    from rich.progress import Progress

    from bot.stores import migrate_memory

    settings = stores_settings()
    with Progress(console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        done = run_work(lambda: migrate_memory(settings, progress))
    if not done:
        typer.echo("Nothing to migrate: no store of qdrant-client's local mode is left in the data directory.")
    for name, count in done.items():
        typer.echo(f"{name}: {count} points migrated to Qdrant Edge (ids, payloads and vectors kept)")
