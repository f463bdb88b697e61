"""What every ``membot`` command shares: the command groups, settings loading, and turning errors into one line."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from adapters import keys as adapter_keys
from bot.admin.memory import UnknownAgent
from bot.core.events import AgentKey, InvalidAgentKey
from bot.core.memory_types import VersionNotKept
from bot.ops.data_dir import DataDirError, adopt_legacy_data_dir, check_data_dir
from bot.ops.logs import configure_logging
from bot.settings import ConfigError, Settings, load_settings
from bot.stores import ServiceUnavailable, storage_failure

app = typer.Typer(help="membot: a chat companion with long-term memory.", no_args_is_help=True, add_completion=False)
agents_app = typer.Typer(help="See whom membot remembers.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
memory_app = typer.Typer(help="See, export, repair or erase what membot remembers about someone.", no_args_is_help=True)
app.add_typer(memory_app, name="memory")
jobs_app = typer.Typer(help="See the scheduled heartbeat jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

err = Console(stderr=True)
T = TypeVar("T")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"membot {version('membot')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool, typer.Option("--version", help="Print membot's version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """membot: a chat companion with long-term memory."""


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def command_settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    configure_logging(settings.log_level, settings.log_format)
    settings, notice = adopt_legacy_data_dir(settings)
    if notice:
        err.print(f"membot: {notice}", highlight=False, soft_wrap=True)
    return settings


def stores_settings() -> Settings:
    """Settings for a command that opens the memory stores: embedded Qdrant needs a writable data directory."""
    settings = command_settings()
    if not settings.qdrant_url:
        try:
            check_data_dir(settings.data_dir)
        except DataDirError as exc:
            raise fail(str(exc), 2) from None
    return settings


def run_work(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning configuration and service errors into one clear line and a non-zero exit."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except ServiceUnavailable as exc:
        raise fail(str(exc)) from None
    except UnknownAgent as exc:
        hint = "Agent keys look like console:<name>, discord:<guild|dm>:<user>, slack:<team>:<user>."
        raise fail(f"{exc}. {hint}") from None
    except VersionNotKept as exc:
        raise fail(f"{exc}. See `membot memory history`.") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        data_dir = _data_dir()
        problem = storage_failure(exc, data_dir)
        if problem is None:
            raise
        raise fail(
            f"{problem} (MEMBOT_DATA_DIR {data_dir or 'unknown'}), so the command did not finish. Free some space "
            "on that disk (or make it writable) and run the command again."
        ) from None


def _data_dir() -> Path | None:
    """The configured data directory, for messages about it (None when the settings cannot be read)."""
    try:
        return load_settings().data_dir.resolve()
    except Exception:
        return None


def console_name(user: str | None) -> str:
    """The console user's name: ``--user`` when given (never blank), else the login name."""
    if user is not None and not user.strip():
        raise fail("--user must not be empty: give a name, e.g. --user alice (or leave --user out).", 2)
    return user.strip() if user is not None else (getpass.getuser() or "you")


def parse_agent_key(text: str) -> AgentKey:
    try:
        return adapter_keys.parse_agent_key(text)
    except InvalidAgentKey as exc:
        raise fail(str(exc), 2) from None
