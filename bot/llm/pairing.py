"""Every tool call answered exactly once: the one repair of a conversation before a model sees it.

Both APIs reject a tool call without its result and a result without its call. A stop in the middle of a turn, or
a message queued between a call and its result, can leave either in the queue. The context manager repairs the
queue before each step, and each provider again before it builds its request (it may be handed any messages):

- a call left open when a non-result message follows (or the conversation ends) gets a failed placeholder result
  right there;
- a result whose call is not the open one becomes a user message that says what it is, so nothing the model once
  saw is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.llm.types import ChatMessage

log = logging.getLogger(__name__)

MISSING_RESULT = '{"status": "Failed", "message": "no result was recorded for this call (the turn was interrupted)"}'


def pair_tool_calls(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``messages`` with every tool call followed by exactly one result, and no result without its call."""
    paired: list[ChatMessage] = []
    open_calls: dict[str, str] = {}  # call id -> function name, of the latest assistant message

    def close_open_calls() -> None:
        if open_calls:
            log.warning("tool calls without results: %s", ", ".join(open_calls.values()))
            paired.extend(ChatMessage("tool", MISSING_RESULT, tool_call_id=i, name=n) for i, n in open_calls.items())
            open_calls.clear()

    for message in messages:
        if message.role == "tool":
            if message.tool_call_id is not None and message.tool_call_id in open_calls:
                del open_calls[message.tool_call_id]
                paired.append(message)
            else:
                log.warning("tool result without its call: %s", message.name or message.tool_call_id)
                label = f"[result of function {message.name or '?'} (call {message.tool_call_id or '?'})]"
                paired.append(ChatMessage("user", f"{label}\n{message.content}"))
            continue
        close_open_calls()
        if message.role == "assistant":
            open_calls.update((call.id, call.name) for call in message.tool_calls)
        paired.append(message)
    close_open_calls()
    return paired
