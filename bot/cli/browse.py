"""``membot agents list`` and ``membot memory search``: find whom membot remembers, and what it remembers of them.

Read-only; both open the stores without a model."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bot.app import open_memory_app
from bot.cli.common import agents_app, memory_app, parse_agent_key, run_work, stores_settings
from bot.core.events import Scope
from bot.core.memory_types import SearchHit


@agents_app.command("list")
def agents_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every agent membot keeps memory for, with how much it remembers of each."""
    settings = stores_settings()

    async def work() -> list[dict[str, Any]]:
        async with open_memory_app(settings) as running:
            return [
                {
                    "agent": str(view.agent),
                    "recall": view.recall_count,
                    "archival": view.archival_count,
                    "last_modified": view.last_modified.isoformat() if view.last_modified else None,
                }
                for agent in await running.admin.agents()
                for view in [await running.admin.show(agent)]
            ]

    rows = run_work(work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("membot remembers no one yet")
        return
    table = Table("agent", "recall entries", "archival notes", "core last modified (UTC)")
    for row in rows:
        table.add_row(row["agent"], str(row["recall"]), str(row["archival"]), row["last_modified"] or "never")
    Console(width=200).print(table, highlight=False)


@memory_app.command("search")
def memory_search(
    agent_key: Annotated[str, typer.Argument(help="e.g. console:alice, discord:dm:1234, slack:T01:U02")],
    query: Annotated[str, typer.Argument(help="What to look for, in any words (searched by meaning and by words).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search an agent's recall and archival memory as the model would, private entries included."""
    key = parse_agent_key(agent_key)
    if not query.strip():
        raise typer.BadParameter("give some words to search for", param_hint="QUERY")
    settings = stores_settings()

    async def work() -> list[SearchHit]:
        async with open_memory_app(settings) as running:
            return await running.admin.search(key, query, Scope.PRIVATE)

    hits = run_work(work)
    if as_json:
        typer.echo(json.dumps([_hit_dict(hit) for hit in hits], indent=2, ensure_ascii=False))
        return
    if not hits:
        typer.echo(f"nothing in {key}'s memory matches")
        return
    table = Table("score", "when (UTC)", "who", "text")
    for hit in hits:
        text = f"{hit.text}\n(attached: {hit.attachment_text})" if hit.attachment_text else hit.text
        table.add_row(f"{hit.score:.3f}", f"{hit.timestamp:%Y-%m-%d %H:%M}", _who(hit), text)
    Console(width=200).print(table, highlight=False, markup=False)


def _who(hit: SearchHit) -> str:
    """The speaker of a recall entry, or "note" for an archival one (it has no role)."""
    if hit.role is None:
        return "note"
    return hit.author or hit.role


def _hit_dict(hit: SearchHit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "kind": "recall" if hit.role else "archival",
        "score": round(hit.score, 4),
        "timestamp": hit.timestamp.isoformat(),
        "role": hit.role,
        "author": hit.author,
        "text": hit.text,
        **({"attachment_text": hit.attachment_text} if hit.attachment_text else {}),
    }
