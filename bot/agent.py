"""The step loop: prompt the model, run the functions it calls, and go on while it asks for heartbeats."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.context import ContextManager
from bot.events import Scope
from bot.llm.types import ChatMessage, Completion, ContextOverflowError
from bot.metrics import Metrics
from bot.ports import ChatModel, WorkingMemory
from bot.tools import ToolContext, execute_tool, tool_specs

log = logging.getLogger(__name__)

UNSENT_REPLY_NOTE = (
    "[system] Your last reply was not delivered: the user only sees text passed to send_message. "
    "If you meant to answer, call send_message now."
)


@dataclass
class TurnReport:
    """What happened in one turn (for logs, tests and benchmarks)."""

    steps: int = 0
    messages_sent: int = 0
    failed_calls: int = 0
    overflow_retries: int = 0
    hit_max_steps: bool = False


class Agent:
    """Runs turns for any agent: all per-agent state lives in the stores, so one Agent serves every user."""

    def __init__(
        self,
        model: ChatModel,
        working: WorkingMemory,
        context: ContextManager,
        *,
        max_steps: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._model = model
        self._working = working
        self._context = context
        self._max_steps = max_steps

    async def run_turn(self, ctx: ToolContext, *, expects_reply: bool) -> TurnReport:
        """Step until the model stops asking for another step, or ``max_steps``.

        ``expects_reply``: a user spoke, so a turn that ends with private text and no send_message gets one
        reminder that the user cannot see it.
        """
        report = TurnReport()
        private = ctx.scope is Scope.PRIVATE  # what this turn adds to the queue is hidden from channel turns
        reminded = False
        while report.steps < self._max_steps:
            report.steps += 1
            completion = await self._complete(ctx, report)
            assistant = ChatMessage("assistant", completion.text, completion.tool_calls, private=private)
            if not completion.tool_calls:
                await self._working.append(ctx.agent, [assistant], fence=ctx.fence)
                if expects_reply and not reminded and report.messages_sent == 0 and completion.text.strip():
                    reminded = True
                    note = ChatMessage("user", UNSENT_REPLY_NOTE, private=private)
                    await self._working.append(ctx.agent, [note], fence=ctx.fence)
                    continue
                break
            results: list[ChatMessage] = []
            wants_step = False
            for call in completion.tool_calls:
                outcome = await execute_tool(call, ctx)
                self._metrics.memory_operation(call.name, not outcome.failed)
                results.append(
                    ChatMessage("tool", outcome.content, tool_call_id=call.id, name=call.name, private=private)
                )
                report.messages_sent += outcome.sent_message
                report.failed_calls += outcome.failed
                wants_step = wants_step or outcome.heartbeat
            await self._working.append(ctx.agent, [assistant, *results], fence=ctx.fence)
            if not wants_step:
                break
        else:
            report.hit_max_steps = True
            log.info("turn stopped at max_steps", extra={"agent": str(ctx.agent), "steps": report.steps})
        return report

    async def _complete(self, ctx: ToolContext, report: TurnReport) -> Completion:
        """One model call within budget; a provider overflow error flushes the queue and retries once."""
        tools = tool_specs()
        prompt = await self._context.prepare(ctx.agent, tools, ctx.scope, fence=ctx.fence)
        try:
            return await self._model.complete(
                prompt.system, prompt.messages, tools, max_output_tokens=self._context.budget.max_output_tokens
            )
        except ContextOverflowError:
            report.overflow_retries += 1
            log.warning("provider reported context overflow; flushing and retrying", extra={"agent": str(ctx.agent)})
            await self._context.flush(ctx.agent, tools, ctx.scope, fence=ctx.fence)
            prompt = await self._context.prepare(ctx.agent, tools, ctx.scope, fence=ctx.fence)
            return await self._model.complete(
                prompt.system, prompt.messages, tools, max_output_tokens=self._context.budget.max_output_tokens
            )
