"""A scripted "model" for the LLM stand-in: deterministic rules that exercise membot's machinery.

It reads the request the real SDK sent (system prompt, messages, tools) and answers with function calls, the way a
MemGPT-style model would. It is not a language model; it checks the plumbing around the prompts.

User intents (the text after the message header):
- ``my name is X``        → core_memory_append(human, "Name: X"), then send_message
- ``remember: X``         → archival_memory_insert(X), then send_message
- ``what is my name``     → read "Name: X" from core memory in the system prompt → send_message
- ``search: Q``           → conversation_search(Q), then send_message with what was found
- ``recall: Q``           → archival_memory_search(Q), then send_message with what was found
- ``think only``          → plain text without send_message (membot should remind once)
- anything else           → send_message("echo: <text>")
Summary requests (membot's summarizer) get a short summary that names the turns it saw.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tests.standins.llm_server import ObservedRequest, ScriptedReply

SUMMARY_MARKER = "conversation summaries"


def user_text(content: str) -> str:
    """The user's words without membot's header line(s)."""
    lines = content.splitlines()
    if lines and lines[0].startswith("[") and "UTC]" in lines[0]:
        lines = lines[1:]
    return "\n".join(lines).strip()


def is_summary_request(request: ObservedRequest) -> bool:
    return SUMMARY_MARKER in request.system


@dataclass
class Brain:
    """Callable handler for ScriptedLLMServer; records what it decided, per request."""

    decisions: list[str] = field(default_factory=list)

    def __call__(self, request: ObservedRequest) -> ScriptedReply:
        reply = self._decide(request)
        self.decisions.append(reply.tool_calls[0][0] if reply.tool_calls else f"text:{reply.text[:30]}")
        return reply

    def _decide(self, request: ObservedRequest) -> ScriptedReply:
        if is_summary_request(request):
            turns = re.findall(r"turn (\d+)", request.messages[-1]["content"])
            seen = f"turns {turns[0]}-{turns[-1]}" if turns else "some messages"
            return ScriptedReply(text=f"The user and membot exchanged {seen}; details are in recall memory.")
        messages = request.messages
        last = messages[-1]
        if last["role"] == "tool":
            return self._after_tool(messages)
        fresh = [m for m in _after_last_assistant(messages) if m["role"] == "user"]
        spoken = [user_text(m["content"]) for m in fresh if not m["content"].lstrip().startswith("[system]")]
        if not spoken:
            return ScriptedReply(tool_calls=[("send_message", {"message": "(noted the system event)"})])
        return self._intent(spoken[-1], request.system)

    def _intent(self, text: str, system: str) -> ScriptedReply:
        lowered = text.lower()
        if match := re.match(r"my name is (\w+)", lowered):
            name = text[match.start(1) : match.end(1)]
            args = {"label": "human", "content": f"Name: {name}", "request_heartbeat": True}
            return ScriptedReply(text="Saving their name.", tool_calls=[("core_memory_append", args)])
        if lowered.startswith("remember:"):
            args = {"content": text.split(":", 1)[1].strip(), "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("archival_memory_insert", args)])
        if "what is my name" in lowered:
            found = re.search(r"Name: (\w+)", system)
            answer = f"Your name is {found.group(1)}." if found else "I don't know your name yet."
            return ScriptedReply(tool_calls=[("send_message", {"message": answer})])
        if lowered.startswith("search:"):
            args = {"query": text.split(":", 1)[1].strip(), "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("conversation_search", args)])
        if lowered.startswith("recall:"):
            args = {"query": text.split(":", 1)[1].strip(), "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("archival_memory_search", args)])
        if lowered == "think only":
            return ScriptedReply(text="I will answer in my head only.")
        return ScriptedReply(tool_calls=[("send_message", {"message": f"echo: {text}"})])

    def _after_tool(self, messages: list[dict]) -> ScriptedReply:
        results = [m for m in _after_last_assistant(messages) if m["role"] == "tool"]
        content = results[-1]["content"] if results else ""
        status = _status(content)
        if status.get("status") == "Failed":
            return ScriptedReply(tool_calls=[("send_message", {"message": f"That failed: {status.get('message')}"})])
        message = status.get("message", content)
        if message.startswith("Showing") or message.startswith("No "):
            return ScriptedReply(tool_calls=[("send_message", {"message": f"Found: {message}"})])
        if message.startswith("Sent"):
            return ScriptedReply(text="Done.")
        return ScriptedReply(tool_calls=[("send_message", {"message": "Got it, I'll remember that."})])


def _after_last_assistant(messages: list[dict]) -> list[dict]:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant":
            return messages[index + 1 :]
    return messages


def _status(content: str) -> dict[str, str]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
