"""``membot import PATH... --user AGENT_KEY``: feed documents into an agent's archival memory.

Text, Markdown, HTML, PDF and DOCX are read (``bot.admin.documents``), cut into passages that name their source,
page and position, and stored with a progress bar. A passage already stored (the same file imported again) is
counted, not stored twice. A file that cannot be read is named with the reason and the others go on; the exit
status is 1 when any file failed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from bot.admin.audit import CLI_CAUSE
from bot.admin.documents import DocumentError
from bot.admin.memory import ImportReport
from bot.app import open_memory_app
from bot.cli.common import app, err, parse_agent_key, run_work, stores_settings
from bot.core.events import AgentKey, Scope
from bot.settings import Settings


@dataclass(frozen=True)
class _Failed:
    path: Path
    reason: str


@app.command("import")
def import_documents(
    paths: Annotated[list[Path], typer.Argument(help="Files (.txt .md .html .pdf .docx) or folders.")],
    user: Annotated[str, typer.Option("--user", "-u", help="The agent key, e.g. console:alice or slack:T01:U02.")],
    public: Annotated[
        bool, typer.Option("--public", help="Let channel conversations see these notes (default: private).")
    ] = False,
) -> None:
    """Import documents into someone's archival memory, where membot's searches find them."""
    key = parse_agent_key(user)
    files = _expand(paths)
    if not files:
        raise typer.BadParameter("no files to import", param_hint="PATHS")
    settings = stores_settings()
    scope = Scope.PUBLIC if public else Scope.PRIVATE
    reports, failed = run_work(lambda: _import_all(key, files, scope, settings))
    for report in reports:
        again = f", {report.duplicates} already known" if report.duplicates else ""
        typer.echo(f"{report.source}: {report.stored} of {report.chunks} passages stored{again}")
    for failure in failed:
        err.print(f"[red]not imported[/] {failure.path}: {failure.reason}", highlight=False, soft_wrap=True)
    raise typer.Exit(1 if failed else 0)


def _advance(bar: Progress, task: TaskID, done: int, total: int) -> None:
    bar.update(task, completed=done, total=total)


def _expand(paths: list[Path]) -> list[Path]:
    """The files named, with the files inside named folders (sorted); missing paths stay, to be reported."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


async def _import_all(
    key: AgentKey, files: list[Path], scope: Scope, settings: Settings
) -> tuple[list[ImportReport], list[_Failed]]:
    reports: list[ImportReport] = []
    failed: list[_Failed] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    async with open_memory_app(settings) as running:
        with Progress(*columns, console=err, transient=False) as bar:
            for path in files:
                task = bar.add_task(path.name, total=None)
                try:
                    report = await running.admin.import_document(
                        key,
                        path.name,
                        path.read_bytes(),
                        scope,
                        cause=CLI_CAUSE,
                        detail={"file": str(path.resolve())},
                        progress=partial(_advance, bar, task),
                    )
                except (DocumentError, OSError) as exc:
                    bar.remove_task(task)
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    failed.append(_Failed(path, reason))
                    continue
                reports.append(report)
    return reports, failed
