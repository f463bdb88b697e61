"""The functions the model may call, their JSON schemas, and the executor that never lets a bad call crash a turn.

Schemas come from the typed signatures of ``MemoryFunctions``; descriptions come from ``prompts/tools.md``.
Every failure (unknown function, arguments that are not JSON, wrong types, a memory error) becomes the
function's result text, so the model sees what went wrong and can try again.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import PAGE_SIZE, ArchivalEntry, AuditEntry, AuditKind, Fence, MemoryEditError, SearchPage
from bot.core.ports import ArchivalMemory, AuditLog, CoreMemory, RecallMemory, Reminders
from bot.core.prompts import load_prompt
from bot.llm.types import ReplyPreview, ToolCall, ToolSpec

HEARTBEAT_PARAM = "request_heartbeat"
MAX_HIT_CHARS = 1500
MAX_REMINDER_AHEAD = timedelta(days=366)  # a reminder further ahead than this is refused
MAX_REMINDER_CHARS = 500
MAX_PENDING_REMINDERS = 25  # per agent


class ToolFailure(Exception):
    """A function failed in a way the model can fix; the message is shown to it."""


@dataclass
class ToolContext:
    """What the functions of one turn act on, and what caused the turn (recorded with every memory write)."""

    agent: AgentKey
    scope: Scope
    core: CoreMemory
    recall: RecallMemory
    archival: ArchivalMemory
    audit: AuditLog
    send: Callable[[str], Awaitable[None]]
    cause: str  # bot.core.memory_types.event_cause(...) for a message, heartbeat_cause(...) for a heartbeat
    surfaced: set[str] = field(default_factory=set)  # normalized texts shown by searches during this turn
    archival_source: str = "agent"  # ArchivalEntry.source of notes inserted in this turn ("reflection" in heartbeats)
    fence: Fence | None = None  # the turn's holding of the agent's lock: its memory writes carry it (memory_types)
    reminders: Reminders | None = None  # None: this membot keeps no reminders (the functions say so)
    preview: ReplyPreview | None = None  # shown the replies the model is writing (a user turn on a live sink)


@dataclass(frozen=True)
class ToolOutcome:
    """The result of one call, as the model will read it."""

    content: str
    failed: bool
    heartbeat: bool
    sent_message: bool = False


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _parse_when(text: str, *, end: bool) -> datetime:
    """Parse an ISO date or date-time; a bare date means the start (or, for ``end``, the end) of that day."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ToolFailure(
            f"could not read {text!r} as a date; use ISO format like 2024-05-01 or 2024-05-01T18:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_local_time(text: str, zone_name: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is a local time in ``zone_name``. Returned in UTC."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError("a date without a time")
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ToolFailure(
            f"could not read {text!r} as a date and time; use ISO 8601 local time like 2024-05-01T09:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(zone_name))
    return moment.astimezone(UTC)


def format_page(page: SearchPage, what: str) -> str:
    """Render a page of search hits for the model."""
    if not page.hits:
        if page.page > 0 and page.total:
            return f"No {what} on page {page.page}; there are {page.pages} page(s), numbered from 0."
        return f"No {what} found."
    first = page.page * PAGE_SIZE + 1
    lines = [
        f"Showing {what} {first}-{first + len(page.hits) - 1} of {page.total} (page {page.page} of "
        f"{page.pages - 1}, pages start at 0):"
    ]
    for hit in page.hits:
        who = f" {hit.author or hit.role}:" if (hit.author or hit.role) else ""
        text = hit.text if len(hit.text) <= MAX_HIT_CHARS else hit.text[:MAX_HIT_CHARS] + " …[truncated]"
        lines.append(f"- [{hit.timestamp.astimezone(UTC):%Y-%m-%d %H:%M} UTC]{who} {text}")
        if hit.attachment_text:
            attached = " / ".join(hit.attachment_text[:MAX_HIT_CHARS].splitlines())
            lines.append(f"  (attached: {attached})")
    return "\n".join(lines)


class MemoryFunctions:
    """The model's functions. Every public coroutine defined here is offered as a tool."""

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx

    async def send_message(self, message: str) -> str:
        if not message.strip():
            raise ToolFailure("message is empty; write the text the user should read")
        await self._ctx.send(message)
        return "Sent."

    async def core_memory_append(self, label: str, content: str, private: bool | None = None) -> str:
        ctx = self._ctx
        block = await ctx.core.append(
            ctx.agent, label, content, cause=ctx.cause, private=_private(ctx, private), fence=ctx.fence
        )
        return f"Appended to '{label}' ({block.chars}/{block.limit} characters used)."

    async def core_memory_replace(
        self, label: str, old_content: str, new_content: str, private: bool | None = None
    ) -> str:
        ctx = self._ctx
        public_only = ctx.scope is Scope.PUBLIC
        block = await ctx.core.replace(
            ctx.agent,
            label,
            old_content,
            new_content,
            cause=ctx.cause,
            public_only=public_only,
            private=_private(ctx, private),
            fence=ctx.fence,
        )
        return f"Replaced in '{label}' ({block.chars}/{block.limit} characters used)."

    async def conversation_search(self, query: str, page: int = 0) -> str:
        _check_page(page)
        if not query.strip():
            raise ToolFailure("query is empty; describe what to look for")
        result = await self._ctx.recall.search(self._ctx.agent, query, page, self._ctx.scope)
        return self._shown(result, "messages")

    async def conversation_search_date(self, start_date: str, end_date: str, page: int = 0) -> str:
        _check_page(page)
        start, end = _parse_when(start_date, end=False), _parse_when(end_date, end=True)
        if end < start:
            raise ToolFailure("end_date is before start_date; swap them")
        if end - start > timedelta(days=3660):
            raise ToolFailure("the date range is longer than ten years; narrow it")
        result = await self._ctx.recall.search_date(self._ctx.agent, start, end, page, self._ctx.scope)
        return self._shown(result, "messages")

    async def archival_memory_insert(self, content: str, private: bool | None = None) -> str:
        if not content.strip():
            raise ToolFailure("content is empty; write the note to store")
        normalized = _normalize(content)
        if any(normalized in seen or seen in normalized for seen in self._ctx.surfaced if len(seen) > 20):
            raise ToolFailure(
                "this text came from a search result and is already stored; do not save recalled text again"
            )
        entry = ArchivalEntry(
            agent=self._ctx.agent,
            text=content,
            timestamp=datetime.now(UTC),
            scope=Scope.PRIVATE if _private(self._ctx, private) else Scope.PUBLIC,
            source=self._ctx.archival_source,
        )
        result = await self._ctx.archival.insert(entry, fence=self._ctx.fence)
        if not result.stored:
            return f"Not stored: archival memory already holds a near-identical note: {result.duplicate_text!r}"
        detail = {"id": result.id, "scope": entry.scope.value, "source": entry.source}
        await self._ctx.audit.record(entry.agent, AuditEntry(AuditKind.ARCHIVAL_INSERT, self._ctx.cause, detail=detail))
        return "Stored in archival memory."

    async def archival_memory_search(self, query: str, page: int = 0) -> str:
        _check_page(page)
        if not query.strip():
            raise ToolFailure("query is empty; describe what to look for")
        result = await self._ctx.archival.search(self._ctx.agent, query, page, self._ctx.scope)
        return self._shown(result, "archival notes")

    async def schedule_reminder(self, when: str, text: str) -> str:
        reminders = self._reminders()
        if not text.strip():
            raise ToolFailure("text is empty; write what the user should be reminded of")
        if len(text) > MAX_REMINDER_CHARS:
            raise ToolFailure(f"text is {len(text)} characters long; keep it under {MAX_REMINDER_CHARS}")
        agent = self._ctx.agent
        zone_name = await reminders.timezone(agent)
        due = parse_local_time(when, zone_name)
        now = datetime.now(UTC)
        local_now = f"{now.astimezone(_zone(zone_name)):%Y-%m-%d %H:%M} {zone_name}"
        if due <= now:
            raise ToolFailure(
                f"{when!r} is in the past: it is now {local_now}. Work out the intended time from the current time "
                "and call again with a future time"
            )
        if due - now > MAX_REMINDER_AHEAD:
            raise ToolFailure(f"{when!r} is more than a year ahead (it is now {local_now}); reminders go up to a year")
        if len(await reminders.pending(agent)) >= MAX_PENDING_REMINDERS:
            raise ToolFailure(
                f"the user already has {MAX_PENDING_REMINDERS} pending reminders; cancel one first (list_reminders)"
            )
        reminder = await reminders.schedule(agent, due, text.strip(), scope=self._ctx.scope)
        return (
            f"Reminder {reminder.id} set for {reminder.local_due()} ({due:%Y-%m-%d %H:%M} UTC). It will be sent "
            "where the user last spoke. Tell the user when it is set for."
        )

    async def list_reminders(self) -> str:
        reminders = self._reminders()
        pending = await reminders.pending(self._ctx.agent)
        if self._ctx.scope is Scope.PUBLIC:
            pending = [r for r in pending if r.scope is Scope.PUBLIC]
        if not pending:
            return "No pending reminders."
        lines = [f"{len(pending)} pending reminder(s), soonest first:"]
        lines.extend(f"- {r.id}: {r.local_due()}: {r.text}" for r in pending)
        return "\n".join(lines)

    async def cancel_reminder(self, reminder_id: str) -> str:
        reminders = self._reminders()
        wanted = reminder_id.strip()
        pending = {r.id: r for r in await reminders.pending(self._ctx.agent)}
        found = pending.get(wanted)
        if found is None or (self._ctx.scope is Scope.PUBLIC and found.scope is Scope.PRIVATE):
            raise ToolFailure(f"no pending reminder has id {wanted!r}; list_reminders shows the ids")
        await reminders.cancel(self._ctx.agent, wanted)
        return f"Cancelled reminder {wanted} ({found.local_due()}: {found.text})."

    def _reminders(self) -> Reminders:
        if self._ctx.reminders is None:
            raise ToolFailure("reminders are not available in this membot; tell the user you cannot set them")
        return self._ctx.reminders

    def _shown(self, page: SearchPage, what: str) -> str:
        self._ctx.surfaced.update(_normalize(hit.text) for hit in page.hits)
        return format_page(page, what)


def _private(ctx: ToolContext, private: bool | None) -> bool:
    """Whether memory written now is private: as the model says, else as the turn is (a DM, the console and
    heartbeats are private; a channel is public). So a fact learned in a DM stays out of channels unless the user
    said it may be shared (``private: false``)."""
    return ctx.scope is Scope.PRIVATE if private is None else private


def _check_page(page: int) -> None:
    if page < 0:
        raise ToolFailure("page must be 0 or more")


TOOL_NAMES: tuple[str, ...] = tuple(
    name
    for name, member in vars(MemoryFunctions).items()
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
)


def _descriptions() -> dict[str, tuple[str, dict[str, str]]]:
    """Parse prompts/tools.md into {function: (description, {parameter: description})}."""
    result: dict[str, tuple[str, dict[str, str]]] = {}
    for section in load_prompt("tools").split("\n## ")[1:]:
        name, _, body = section.partition("\n")
        text_lines, params = [], {}
        for line in body.splitlines():
            match = re.match(r"- (\w+): (.*)", line)
            if match:
                params[match.group(1)] = match.group(2).strip()
            elif line.strip():
                text_lines.append(line.strip())
        result[name.strip()] = (" ".join(text_lines), params)
    return result


@cache
def _argument_model(name: str) -> type[BaseModel]:
    """A pydantic model of the function's arguments, built from its signature."""
    signature = inspect.signature(getattr(MemoryFunctions, name))
    fields: dict[str, Any] = {}
    for param in list(signature.parameters.values())[1:]:
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (param.annotation if param.annotation is not inspect.Parameter.empty else str, default)
    if name != "send_message":
        fields[HEARTBEAT_PARAM] = (bool, False)
    model: type[BaseModel] = create_model(
        f"{name}_arguments", __config__=ConfigDict(extra="forbid", str_strip_whitespace=False), **fields
    )
    return model


@cache
def tool_specs() -> tuple[ToolSpec, ...]:
    """The JSON-schema specs of every function, with descriptions from prompts/tools.md."""
    descriptions = _descriptions()
    specs = []
    for name in TOOL_NAMES:
        if name not in descriptions:
            raise RuntimeError(f"prompts/tools.md has no section for {name}")
        text, param_docs = descriptions[name]
        schema = _argument_model(name).model_json_schema()
        properties = {}
        for param, prop in schema.get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            if param not in param_docs:
                raise RuntimeError(f"prompts/tools.md does not describe {name}.{param}")
            prop["description"] = param_docs[param]
            properties[param] = prop
        parameters = {"type": "object", "properties": properties, "required": schema.get("required", [])}
        specs.append(ToolSpec(name=name, description=text, parameters=parameters))
    return tuple(specs)


def _result(status: str, message: str) -> str:
    return json.dumps({"status": status, "message": message}, ensure_ascii=False)


async def execute_tool(call: ToolCall, ctx: ToolContext) -> ToolOutcome:
    """Run one function call; every failure is returned to the model as the result."""
    if call.name not in TOOL_NAMES:
        return ToolOutcome(
            _result("Failed", f"unknown function {call.name!r}; available: {', '.join(TOOL_NAMES)}"), True, True
        )
    try:
        raw = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError as exc:
        return ToolOutcome(
            _result("Failed", f"arguments are not valid JSON ({exc.msg}); send a JSON object"), True, True
        )
    if not isinstance(raw, dict):
        return ToolOutcome(_result("Failed", "arguments must be a JSON object of named parameters"), True, True)
    try:
        arguments = _argument_model(call.name).model_validate(raw).model_dump()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        return ToolOutcome(_result("Failed", f"invalid arguments for {call.name}: {problems}"), True, True)
    heartbeat = bool(arguments.pop(HEARTBEAT_PARAM, False))
    function = getattr(MemoryFunctions(ctx), call.name)
    try:
        message = await function(**arguments)
    except (ToolFailure, MemoryEditError) as exc:
        return ToolOutcome(_result("Failed", f"{call.name} failed: {exc}"), True, True)
    return ToolOutcome(_result("OK", message), False, heartbeat, sent_message=call.name == "send_message")
