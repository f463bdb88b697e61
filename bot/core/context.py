"""Context window management: the token budget, the memory-pressure alert, and eviction into a summary.

Before every model call the prompt is counted. At 75 % of the budget (``context_window - max_output_tokens``) the
model gets one pressure alert per cycle; at 100 % the oldest messages are evicted and folded, with the previous
summary, into a new recursive summary. Evicted messages remain in recall memory, so nothing is lost.

Eviction target: the queue is cut to half of the room the fixed part of the prompt (instructions, tools, core
memory, summary) leaves it. With a normal window that is about 50 % of the budget; with a tiny window it keeps
eviction possible at all.

Prompt caching: consecutive prompts of an agent share a byte-identical prefix (instructions, core memory, summary,
the older queue) unless a memory edit or an eviction happened in between. What changes every call (the clock, the
memory counts) is the status note, ``SystemPrompt.volatile``, which the providers send at the very end, after the
last cache breakpoint. ``SystemPrompt.cache_key`` names the agent's cache (hashed, it carries no identity).

Privacy: queue messages from a private context (a DM, the console, a heartbeat) are marked ``private``. A turn in
a channel sees the queue without them, and the summary of only the public messages evicted, so what was said in a
DM never reaches a channel's prompt (it matters on Slack, where one agent serves a user's DMs and channels).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.core.events import AgentKey, Scope
from bot.core.memory_types import Fence
from bot.core.ports import ArchivalMemory, ChatModel, CoreMemory, RecallMemory, WorkingMemory
from bot.core.privacy import visible_text
from bot.core.prompts import load_prompt
from bot.llm.pairing import pair_tool_calls
from bot.llm.types import ChatMessage, ImageInput, ModelError, SystemPrompt, ToolSpec

log = logging.getLogger(__name__)

ALERT_RATIO = 0.75

Images = Mapping[ChatMessage, tuple[ImageInput, ...]]  # a turn's images, by the queued message they came with
MAX_RENDERED_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class Prompt:
    """What goes to the model for one step."""

    system: SystemPrompt
    messages: list[ChatMessage]
    tokens: int


@dataclass(frozen=True)
class Budget:
    context_window: int
    max_output_tokens: int

    @property
    def tokens(self) -> int:
        return self.context_window - self.max_output_tokens

    @property
    def summary_tokens(self) -> int:
        return max(64, min(1024, self.tokens // 8))


def visible_messages(messages: Sequence[ChatMessage], scope: Scope) -> list[ChatMessage]:
    """The queue as a turn of ``scope`` sees it: in a channel, without what was said or done in private."""
    if scope is Scope.PRIVATE:
        return list(messages)
    return [message for message in messages if not message.private]


def cut_points(messages: Sequence[ChatMessage]) -> list[int]:
    """Indexes where the queue may be cut (messages[:i] evicted): never between a tool call and its result.

    Cuts before a user message come first (the kept queue then starts with the user), then the others, each
    group in order; the last message, and the unanswered user messages at the end, always stay.
    """
    # The trailing run of user messages (the message being answered, plus any alert after it) stays whole: a cut
    # inside it would evict what the model has not answered yet.
    tail = len(messages)
    while tail > 0 and messages[tail - 1].role == "user":
        tail -= 1
    allowed = [i for i in range(1, min(tail, len(messages) - 1) + 1) if messages[i].role != "tool"]
    return [i for i in allowed if messages[i].role == "user"] + [i for i in allowed if messages[i].role != "user"]


def render_for_summary(messages: Sequence[ChatMessage]) -> str:
    lines = []
    for message in messages:
        if message.role == "user":
            lines.append(f"user: {message.content}")
        elif message.role == "assistant":
            if message.content:
                lines.append(f"membot (private thought): {message.content}")
            lines.extend(f"membot called {call.name}({call.arguments})" for call in message.tool_calls)
        else:
            lines.append(f"result of {message.name}: {message.content}")
    return "\n".join(
        line if len(line) <= MAX_RENDERED_MESSAGE_CHARS else line[:MAX_RENDERED_MESSAGE_CHARS] + " …" for line in lines
    )


def cache_key(agent: AgentKey, scope: Scope) -> str:
    """The prompt cache an agent's prompts in ``scope`` share (a hash: it goes to the provider)."""
    digest = hashlib.sha256(f"{agent}|{scope.value}".encode()).hexdigest()
    return f"membot-{digest[:32]}"


class EvictionMetrics(Protocol):
    """Where evictions are counted (``bot.ops.metrics.Metrics`` in a running membot)."""

    def evicted(self, messages: int) -> None: ...


class _Unmeasured:
    def evicted(self, messages: int) -> None:
        """Nothing counts evictions."""


class UserClock(Protocol):
    """The user's time zone, shown in the status note (``bot.core.ports.Reminders`` has it)."""

    async def timezone(self, agent: AgentKey) -> str: ...


class ContextManager:
    """Builds each step's prompt within the token budget, alerting and evicting as the queue grows."""

    def __init__(
        self,
        model: ChatModel,
        core: CoreMemory,
        working: WorkingMemory,
        recall: RecallMemory,
        archival: ArchivalMemory,
        budget: Budget,
        metrics: EvictionMetrics | None = None,
        clock: UserClock | None = None,
    ) -> None:
        self._metrics = metrics or _Unmeasured()
        self._clock = clock
        self._model = model
        self._core = core
        self._working = working
        self._recall = recall
        self._archival = archival
        self.budget = budget

    async def system_prompt(self, agent: AgentKey, scope: Scope = Scope.PRIVATE) -> SystemPrompt:
        """Static instructions; core memory with sizes, then the summary; the status note (clock, counts).

        For a turn in a public context (``scope`` PUBLIC) private core lines are left out; sizes stay those of the
        whole block, which is what the limit applies to, and counts are of what searches from there can find.
        """
        blocks = await self._core.blocks(agent)
        parts = ["# Core memory"]
        for block in blocks:
            value = visible_text(block.value, scope)
            parts.append(f'<{block.label} chars="{block.chars}/{block.limit}">\n{value}\n</{block.label}>')
        summary = await self._working.summary(agent, scope)
        if summary:
            parts.append(f"# Summary of earlier conversation (evicted from context, still searchable)\n{summary}")
        return SystemPrompt(
            static=load_prompt("system"),
            dynamic="\n\n".join(parts),
            volatile=await self._status(agent, scope),
            cache_key=cache_key(agent, scope),
        )

    async def _status(self, agent: AgentKey, scope: Scope) -> str:
        """The status note: what changes from one call to the next, kept out of the cached prefix."""
        modified = await self._core.last_modified(agent)
        now = datetime.now(UTC)
        local = ""
        if self._clock is not None:
            zone = await self._clock.timezone(agent)
            local = f" ({now.astimezone(ZoneInfo(zone)):%A %Y-%m-%d %H:%M} in the user's time zone, {zone})"
        return (
            load_prompt("status")
            .replace("{now}", f"{now:%Y-%m-%d %H:%M}")
            .replace("{local}", local)
            .replace("{recall_count}", str(await self._recall.count(agent, scope)))
            .replace("{archival_count}", str(await self._archival.count(agent, scope)))
            .replace("{changed}", f"{modified.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if modified else "never")
        )

    async def prepare(
        self,
        agent: AgentKey,
        tools: Sequence[ToolSpec],
        scope: Scope = Scope.PRIVATE,
        *,
        fence: Fence | None = None,
        images: Images | None = None,
    ) -> Prompt:
        """The prompt for the next model call, after any pressure alert or eviction it needs (written with the
        turn's ``fence``). ``images``: the turn's images, by the queued user message they came with; they are shown
        with that message (and counted) while it is in the queue."""
        prompt = await self._current(agent, tools, scope, images)
        if prompt.tokens >= self.budget.tokens:
            await self.flush(agent, tools, scope, fence=fence)
            return await self._current(agent, tools, scope, images)
        if prompt.tokens >= ALERT_RATIO * self.budget.tokens and not await self._working.pressure_alerted(agent):
            percent = round(100 * prompt.tokens / self.budget.tokens)
            text = load_prompt("pressure_alert").replace("{percent}", str(percent))
            alert = ChatMessage("user", text, private=scope is Scope.PRIVATE)
            await self._working.append(agent, [alert], fence=fence)
            await self._working.set_pressure_alerted(agent, fence=fence)
            log.info("pressure alert", extra={"agent": str(agent), "percent": percent})
            prompt = await self._current(agent, tools, scope, images)
            if prompt.tokens >= self.budget.tokens:
                await self.flush(agent, tools, scope, fence=fence)
                return await self._current(agent, tools, scope, images)
        return prompt

    async def _current(
        self, agent: AgentKey, tools: Sequence[ToolSpec], scope: Scope, images: Images | None = None
    ) -> Prompt:
        system = await self.system_prompt(agent, scope)
        messages = pair_tool_calls(visible_messages(await self._working.messages(agent), scope))
        if images:
            messages = [replace(m, images=images[m]) if m in images else m for m in messages]
        return Prompt(system, messages, self._model.count_tokens(system, messages, tools))

    async def flush(
        self, agent: AgentKey, tools: Sequence[ToolSpec], scope: Scope = Scope.PRIVATE, *, fence: Fence | None = None
    ) -> int:
        """Evict the oldest messages into the recursive summary; return how many were evicted."""
        system = await self.system_prompt(agent, scope)
        queue = await self._working.messages(agent)
        cuts = cut_points(queue)
        if not cuts:
            log.warning("context over budget but nothing can be evicted", extra={"agent": str(agent)})
            return 0
        fixed = self._model.count_tokens(system, [], tools) + self.budget.summary_tokens
        target = max(self.budget.tokens // 2, fixed + (self.budget.tokens - fixed) // 2)
        cut = max(cuts)
        for index in cuts:
            if fixed + self._model.count_tokens(SystemPrompt(""), pair_tool_calls(queue[index:]), []) <= target:
                cut = index
                break
        evicted = queue[:cut]
        previous = await self._working.summary(agent)
        summary = await self._summarize(previous, evicted)
        public_summary = await self._public_summary(agent, evicted, previous, summary)
        await self._working.evict(agent, cut, summary, public_summary, fence=fence)
        self._metrics.evicted(cut)
        log.info("evicted messages into summary", extra={"agent": str(agent), "count": cut})
        return cut

    async def _public_summary(
        self, agent: AgentKey, evicted: Sequence[ChatMessage], previous: str, summary: str
    ) -> str:
        """The new summary a channel turn is shown: of the public messages only (a second model call only when
        private and public messages were evicted together, or have been before)."""
        previous_public = await self._working.summary(agent, Scope.PUBLIC)
        public = visible_messages(evicted, Scope.PUBLIC)
        if not public:
            return previous_public
        if len(public) == len(evicted) and previous_public == previous:
            return summary
        return await self._summarize(previous_public, public)

    async def _summarize(self, previous: str, evicted: Sequence[ChatMessage]) -> str:
        """One model call folding the previous summary and the evicted messages; a plain note if it fails."""
        max_words = max(40, int(self.budget.summary_tokens * 0.7))
        input_room_chars = max(1000, (self.budget.tokens - self.budget.summary_tokens - 400) * 3)
        rendered = render_for_summary(evicted)
        if len(rendered) > input_room_chars:
            rendered = "…" + rendered[-input_room_chars:]
        prompt = (
            load_prompt("summarize")
            .replace("{max_words}", str(max_words))
            .replace("{previous_summary}", previous or "(none)")
            .replace("{messages}", rendered)
        )
        try:
            completion = await self._model.complete(
                SystemPrompt("You write concise, faithful conversation summaries."),
                [ChatMessage("user", prompt)],
                [],
                max_output_tokens=self.budget.summary_tokens,
            )
            summary = completion.text.strip()
        except ModelError as exc:
            log.warning("summary call failed; keeping a plain note", extra={"error": type(exc).__name__})
            summary = ""
        if not summary:
            note = f"({len(evicted)} older messages were moved out of context; search them with conversation_search.)"
            summary = f"{previous}\n{note}".strip()
        return self._cap(summary)

    def _cap(self, summary: str) -> str:
        """Keep the summary within its token share, cutting at a line or word boundary."""
        limit = self.budget.summary_tokens
        if self._model.count_tokens(SystemPrompt(""), [ChatMessage("user", summary)], []) <= limit:
            return summary
        words = summary.split(" ")
        while words and self._model.count_tokens(SystemPrompt(""), [ChatMessage("user", " ".join(words))], []) > limit:
            words = words[: max(1, int(len(words) * 0.9))] if len(words) > 1 else []
        return " ".join(words) + " …"
