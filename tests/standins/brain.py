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
- ``remind: WHEN TEXT``    → schedule_reminder(WHEN, TEXT) (WHEN as written, e.g. 2026-05-02T09:00), then send_message
  with the result (``Set: ...`` or ``That failed: ...``)
- ``reminders?``          → list_reminders, then send_message("Found: <the list>")
- ``cancel reminder ID``  → cancel_reminder(ID), then send_message with the result
- ``long answer``         → send_message(LONG_ANSWER): ~5,000 characters with a Python code block (splitting tests)
- anything else           → send_message("echo: <text>")
Summary requests (membot's summarizer) get a short summary that names the turns it saw. Image description requests
(``prompts/describe_image.md``) get ``describe_image``'s deterministic text: the image's name and a fingerprint of
its bytes (so a test can search recall for them); a turn shown an image echoes like any other.

Heartbeat events (``[system] Heartbeat (reflection)`` / ``(consolidation)``), never answered with small talk:
- reflection    → core_memory_append(human, "Reflection: N new message(s) reviewed.") → archival_memory_insert(an
  insight naming the user's last words) → send_message("Thinking of you: ...") only when the event says
  "Proactive message allowed: yes"; the first call waits ``heartbeat_delay`` seconds (for concurrency tests)
- consolidation → archival_memory_insert(the human block's "Detail:" lines) → core_memory_replace(those lines →
  "Details are in archival memory.")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field

from tests.standins.llm_server import ObservedRequest, ScriptedReply, StreamPlan

SUMMARY_MARKER = "conversation summaries"
DESCRIBE_MARKER = "You describe images"
HEARTBEAT_PREFIX = "[system] Heartbeat"
PROACTIVE_ALLOWED = "Proactive message allowed: yes"


def _long_answer() -> str:
    """About 5,000 characters: prose, a fenced Python block of ~2,500 characters, more prose."""
    prose = " ".join(f"Sentence number {i} explains one more detail of the plan." for i in range(30))
    code = "\n".join(f"def step_{i}(value: int) -> int:\n    return value * {i} + {i * 7}\n" for i in range(45))
    tail = " ".join(f"Closing remark {i} sums things up." for i in range(16))
    return f"{prose}\n\n```python\n{code}```\n\n{tail}"


LONG_ANSWER = _long_answer()


def user_text(content: str) -> str:
    """The user's words without membot's header line(s) and the recent channel messages packed before them."""
    lines = content.splitlines()
    # the Anthropic wire merges consecutive user messages (a turn that failed leaves its message unanswered):
    # the newest message starts at the last header
    headers = [i for i, line in enumerate(lines) if line.startswith("[") and "UTC]" in line]
    if headers:
        lines = lines[headers[-1] :]
    if lines and lines[0].startswith("[") and "UTC]" in lines[0]:
        lines = lines[1:]
    if lines and lines[0].startswith("Recent messages from others"):
        said = next((i for i, line in enumerate(lines) if line.endswith(" says:")), None)
        if said is not None:
            lines = lines[said + 1 :]
    return "\n".join(lines).strip()


def is_summary_request(request: ObservedRequest) -> bool:
    return SUMMARY_MARKER in request.system


def fingerprint(data: bytes) -> str:
    """What the scripted describer says about an image's bytes."""
    return hashlib.sha256(data).hexdigest()[:10]


def describe_image(name: str, data: bytes) -> str:
    """The scripted description of an image named ``name``."""
    return f"A picture called {name} with fingerprint {fingerprint(data)}."


def _description(request: ObservedRequest) -> ScriptedReply:
    images = request.images
    named = re.search(r"sent the image (\S+?)(?: with| without|\.$)", request.messages[-1]["content"])
    if not images:
        return ScriptedReply(text="I was given no image to describe.")
    data = base64.b64decode(images[0]["data"])
    return ScriptedReply(text=describe_image(named.group(1) if named else "?", data))


@dataclass
class Brain:
    """Callable handler for ScriptedLLMServer; records what it decided, per request."""

    decisions: list[str] = field(default_factory=list)
    heartbeat_delay: float = 0.0  # seconds the first model call of each heartbeat event waits
    stream: StreamPlan | None = None  # how streamed answers are paced (default: the stand-in's, at once)

    def __call__(self, request: ObservedRequest) -> ScriptedReply:
        reply = self._decide(request)
        if self.stream is not None:
            reply.stream = self.stream
        self.decisions.append(reply.tool_calls[0][0] if reply.tool_calls else f"text:{reply.text[:30]}")
        return reply

    def _decide(self, request: ObservedRequest) -> ScriptedReply:
        if DESCRIBE_MARKER in request.system:
            return _description(request)
        if is_summary_request(request):
            turns = re.findall(r"turn (\d+)", request.messages[-1]["content"])
            seen = f"turns {turns[0]}-{turns[-1]}" if turns else "some messages"
            return ScriptedReply(text=f"The user and membot exchanged {seen}; details are in recall memory.")
        messages = request.messages
        last = messages[-1]
        event = heartbeat_event(messages)
        if event is not None:
            return self._heartbeat(event, messages, request.system)
        if last["role"] == "tool":
            return self._after_tool(messages)
        fresh = [m for m in _after_last_assistant(messages) if m["role"] == "user"]
        spoken = [user_text(m["content"]) for m in fresh if not _system_only(m["content"])]
        if not spoken and any(m["role"] == "tool" for m in _after_last_assistant(messages)):
            return self._after_tool(messages)  # a system alert arrived after a function result: go on with the turn
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
        if lowered.startswith("remind:"):
            when, _, what = text.split(":", 1)[1].strip().partition(" ")
            args = {"when": when, "text": what.strip(), "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("schedule_reminder", args)])
        if lowered == "reminders?":
            return ScriptedReply(tool_calls=[("list_reminders", {"request_heartbeat": True})])
        if lowered.startswith("cancel reminder "):
            args = {"reminder_id": text.split()[-1], "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("cancel_reminder", args)])
        if lowered.startswith("long answer"):
            return ScriptedReply(tool_calls=[("send_message", {"message": LONG_ANSWER})])
        if lowered == "think only":
            return ScriptedReply(text="I will answer in my head only.")
        return ScriptedReply(tool_calls=[("send_message", {"message": f"echo: {text}"})])

    def _heartbeat(self, event: str, messages: list[dict], system: str) -> ScriptedReply:
        """One step of a heartbeat event (see the module docstring)."""
        last = messages[-1]
        consolidation = event.startswith(f"{HEARTBEAT_PREFIX} (consolidation)")
        if last["role"] != "tool":
            if consolidation:
                details = _detail_lines(system)
                if not details:
                    return ScriptedReply(text="Nothing to condense.")
                args = {"content": "Details about the user: " + " ".join(details), "request_heartbeat": True}
                return ScriptedReply(tool_calls=[("archival_memory_insert", args)])
            count = re.search(r"the user sent (\d+) message", event)
            line = f"Reflection: {count.group(1) if count else '?'} new message(s) reviewed."
            args = {"label": "human", "content": line, "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("core_memory_append", args)], delay=self.heartbeat_delay)
        assistant = next(m for m in reversed(messages) if m["role"] == "assistant")
        called = assistant["tool_calls"][0]["name"] if assistant["tool_calls"] else ""
        status = _status(last["content"])
        if status.get("status") == "Failed" or called == "send_message":
            return ScriptedReply(text=f"Heartbeat finished ({called}: {status.get('status')}).")
        if consolidation:
            if called == "archival_memory_insert":
                args = {"label": "human", "old_content": "\n".join(_detail_lines(system))}
                args.update(new_content="Details are in archival memory.", request_heartbeat=False)
                return ScriptedReply(tool_calls=[("core_memory_replace", args)])
            return ScriptedReply(text="Consolidated.")
        allowed = PROACTIVE_ALLOWED in event
        if called == "core_memory_append":
            note = f"Insight from reflection: the user last said {_last_spoken(messages)!r}."
            args = {"content": note, "request_heartbeat": allowed}
            return ScriptedReply(tool_calls=[("archival_memory_insert", args)])
        if called == "archival_memory_insert" and allowed:
            message = f"Thinking of you: {_last_spoken(messages)}"
            return ScriptedReply(tool_calls=[("send_message", {"message": message})])
        return ScriptedReply(text="Reflection done.")

    def _after_tool(self, messages: list[dict]) -> ScriptedReply:
        results = [m for m in _after_last_assistant(messages) if m["role"] == "tool"]
        content = results[-1]["content"] if results else ""
        status = _status(content)
        if status.get("status") == "Failed":
            return ScriptedReply(tool_calls=[("send_message", {"message": f"That failed: {status.get('message')}"})])
        message = status.get("message", content)
        if message.startswith(("Reminder ", "Cancelled reminder")):
            return ScriptedReply(tool_calls=[("send_message", {"message": f"Set: {message}"})])
        if message.startswith("Showing") or message.startswith("No ") or "pending reminder(s)" in message:
            return ScriptedReply(tool_calls=[("send_message", {"message": f"Found: {message}"})])
        if message.startswith("Sent"):
            return ScriptedReply(text="Done.")
        return ScriptedReply(tool_calls=[("send_message", {"message": "Got it, I'll remember that."})])


def heartbeat_event(messages: list[dict]) -> str | None:
    """The heartbeat event being handled, if the newest non-tool message from the user side is one."""
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"].lstrip()
            return content if content.startswith(HEARTBEAT_PREFIX) else None
    return None


def _system_only(content: str) -> bool:
    """A ``[system]`` note with no user message merged after it (the Anthropic wire merges consecutive ones)."""
    lines = content.lstrip().splitlines()
    if not lines or not lines[0].startswith("[system]"):
        return False
    return not any(line.startswith("[") and "UTC]" in line for line in lines[1:])


def _last_spoken(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message["role"] == "user" and not message["content"].lstrip().startswith("[system]"):
            return user_text(message["content"])
    return "nothing yet"


def _detail_lines(system: str) -> list[str]:
    block = re.search(r'<human chars="[^"]*">\n(.*?)\n</human>', system, re.S)
    return [line for line in (block.group(1) if block else "").splitlines() if line.startswith("Detail:")]


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
