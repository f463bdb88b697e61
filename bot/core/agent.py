"""The step loop: prompt the model, run the functions it calls, and go on while it asks for heartbeats.

The reply guarantee (a user who spoke sees an answer): when a user turn would end without any ``send_message`` (a
memory call without ``request_heartbeat``, plain text, an empty answer), the loop goes on with a short system note
(``prompts/reply_needed.md``, or ``prompts/unsent_reply.md`` after plain text) until the model replies or
``max_steps`` is reached. Plain text written after that reminder is delivered to the user as the reply. A
heartbeat whose ``send_message`` is refused (proactive messages off) ends right after that step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bot.core.context import ContextManager, Images
from bot.core.events import Scope
from bot.core.ports import ChatModel, WorkingMemory
from bot.core.prompts import load_prompt
from bot.core.tools import ToolContext, execute_tool, tool_specs
from bot.llm.types import ChatMessage, Completion, ContextOverflowError, RequestRejected

log = logging.getLogger(__name__)

SEND = "send_message"


@dataclass
class TurnReport:
    """What happened in one turn (for logs, tests and benchmarks)."""

    steps: int = 0
    messages_sent: int = 0
    failed_calls: int = 0
    overflow_retries: int = 0
    hit_max_steps: bool = False
    reminders: int = 0  # system notes added because the turn would have ended without a reply
    plain_text_delivered: bool = False  # plain text after a reminder became the reply
    images_refused: bool = False  # the provider refused the turn's images: it went on without them


class ToolCallMetrics(Protocol):
    """Where the agent counts the functions the model called (``bot.ops.metrics.Metrics`` in a running membot)."""

    def memory_operation(self, operation: str, ok: bool) -> None: ...


class _Unmeasured:
    def memory_operation(self, operation: str, ok: bool) -> None:
        """Nothing counts these calls."""


class Agent:
    """Runs turns for any agent: all per-agent state lives in the stores, so one Agent serves every user."""

    def __init__(
        self,
        model: ChatModel,
        working: WorkingMemory,
        context: ContextManager,
        *,
        max_steps: int,
        metrics: ToolCallMetrics | None = None,
    ) -> None:
        self._metrics = metrics or _Unmeasured()
        self._model = model
        self._working = working
        self._context = context
        self._max_steps = max_steps

    async def run_turn(self, ctx: ToolContext, *, expects_reply: bool, images: Images | None = None) -> TurnReport:
        """Step until the model stops asking for another step, or ``max_steps``.

        ``expects_reply``: a user spoke, so the turn goes on (with a system note) until something was sent; see
        the module docstring for the rule. ``images``: shown with the queued messages they came with, in this
        turn's calls only (``ContextManager.prepare``).
        """
        report = TurnReport()
        private = ctx.scope is Scope.PRIVATE  # what this turn adds to the queue is hidden from channel turns
        reminded = False  # the model was told once that its plain text did not reach the user
        while report.steps < self._max_steps:
            report.steps += 1
            completion = await self._complete(ctx, report, images)
            assistant = ChatMessage("assistant", completion.text, completion.tool_calls, private=private)
            if not completion.tool_calls:
                await self._working.append(ctx.agent, [assistant], fence=ctx.fence)
                if not expects_reply or report.messages_sent:
                    break
                text = completion.text.strip()
                if text and reminded:
                    await ctx.send(text)
                    report.messages_sent += 1
                    report.plain_text_delivered = True
                    break
                reminded = reminded or bool(text)
                if not await self._remind(ctx, report, "unsent_reply" if text else "reply_needed"):
                    break
                continue
            wants_step, refused_send = await self._run_calls(ctx, completion, assistant, report)
            if refused_send and not expects_reply:
                break  # nothing can be sent during this event: do not let the model spend its steps retrying
            if wants_step:
                continue
            if not expects_reply or report.messages_sent or not await self._remind(ctx, report, "reply_needed"):
                break
        else:
            report.hit_max_steps = True
            log.info("turn stopped at max_steps", extra={"agent": str(ctx.agent), "steps": report.steps})
        return report

    async def _run_calls(
        self, ctx: ToolContext, completion: Completion, assistant: ChatMessage, report: TurnReport
    ) -> tuple[bool, bool]:
        """Run the step's calls in order; return (another step wanted, a send_message was refused)."""
        private = assistant.private
        results: list[ChatMessage] = []
        wants_step = refused_send = False
        for call in completion.tool_calls:
            outcome = await execute_tool(call, ctx)
            self._metrics.memory_operation(call.name, not outcome.failed)
            results.append(ChatMessage("tool", outcome.content, tool_call_id=call.id, name=call.name, private=private))
            report.messages_sent += outcome.sent_message
            report.failed_calls += outcome.failed
            wants_step = wants_step or outcome.heartbeat
            refused_send = refused_send or (call.name == SEND and outcome.failed)
        await self._working.append(ctx.agent, [assistant, *results], fence=ctx.fence)
        return wants_step, refused_send

    async def _remind(self, ctx: ToolContext, report: TurnReport, note: str) -> bool:
        """Add the system note ``prompts/<note>.md`` and return True, unless no step is left to answer it."""
        if report.steps >= self._max_steps:
            report.hit_max_steps = True
            return False
        report.reminders += 1
        message = ChatMessage("user", load_prompt(note), private=ctx.scope is Scope.PRIVATE)
        await self._working.append(ctx.agent, [message], fence=ctx.fence)
        return True

    async def _complete(self, ctx: ToolContext, report: TurnReport, images: Images | None) -> Completion:
        """One model call; a request the provider refuses while it carries images (a model that cannot see them
        after all) is made again without them, once the model is told (``prompts/images_refused.md``)."""
        if images and not report.images_refused:
            try:
                return await self._call(ctx, report, images)
            except RequestRejected as exc:
                log.warning("the model refused the turn's images; going on without them", extra={"error": str(exc)})
                report.images_refused = True
                note = ChatMessage("user", load_prompt("images_refused"), private=ctx.scope is Scope.PRIVATE)
                await self._working.append(ctx.agent, [note], fence=ctx.fence)
        return await self._call(ctx, report, None)

    async def _call(self, ctx: ToolContext, report: TurnReport, images: Images | None) -> Completion:
        """One model call within budget; a provider overflow error flushes the queue and retries once."""
        tools = tool_specs()
        prompt = await self._context.prepare(ctx.agent, tools, ctx.scope, fence=ctx.fence, images=images)
        try:
            return await self._model.complete(
                prompt.system,
                prompt.messages,
                tools,
                max_output_tokens=self._context.budget.max_output_tokens,
                preview=ctx.preview,
            )
        except ContextOverflowError:
            report.overflow_retries += 1
            log.warning("provider reported context overflow; flushing and retrying", extra={"agent": str(ctx.agent)})
            await self._context.flush(ctx.agent, tools, ctx.scope, fence=ctx.fence)
            prompt = await self._context.prepare(ctx.agent, tools, ctx.scope, fence=ctx.fence, images=images)
            return await self._model.complete(
                prompt.system,
                prompt.messages,
                tools,
                max_output_tokens=self._context.budget.max_output_tokens,
                preview=ctx.preview,
            )
