"""Model faults for the LLM stand-in, and helpers that check what a user saw and that nothing was lost.

``FaultyModel`` is a handler for ``ScriptedLLMServer``: a user message ``fault:<mode>`` makes every request of that
turn (retries included) answer with the fault; anything else goes to the scripted ``Brain``. So one membot process
can meet every fault in turn and show that it survives each of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import open_memory_app
from bot.core.events import AgentKey
from bot.core.prompts import load_prompt
from bot.settings import Settings
from tests.scenario import env_for
from tests.standins.brain import Brain, user_text
from tests.standins.llm_server import ObservedRequest, ScriptedReply

MEMBOT = [sys.executable, "-m", "bot"]
HTML_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
PLAIN_TEXT = "I think the answer is forty-two."
REPLY_NEEDED_START = load_prompt("reply_needed")[:40]
PRESSURE_ALERT_START = "[system] Memory pressure"


def _truncated(wire: str) -> str:
    """The first 60 characters of a well-formed body: what a connection cut mid-answer leaves."""
    if wire == "anthropic":
        body: dict[str, Any] = {"id": "msg_x", "type": "message", "role": "assistant", "content": [{"type": "text"}]}
    else:
        body = {"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"index": 0, "message": {}}]}
    return json.dumps(body)[:60]


def fault_reply(mode: str, wire: str) -> ScriptedReply:
    """The stand-in's answer for one fault ``mode`` (see FAULTS)."""
    match mode:
        case "429":
            return ScriptedReply(status=429)  # with retry-after: 0, as a rate-limited API may send
        case "500":
            return ScriptedReply(status=500, error_message="internal error")
        case "non-json":
            return ScriptedReply(body_text="upstream said no", content_type="text/plain")
        case "html":
            return ScriptedReply(body_text=HTML_PAGE, content_type="text/html; charset=utf-8")
        case "empty":
            return ScriptedReply(body_text="", content_type="application/json")
        case "empty-object":
            return ScriptedReply(body_text="{}", content_type="application/json")
        case "truncated":
            return ScriptedReply(body_text=_truncated(wire), content_type="application/json")
        case "hang":
            return ScriptedReply(delay=3600.0)  # ends when the stand-in stops
        case "plain-text":
            return ScriptedReply(text=PLAIN_TEXT)
        case "unknown-tools":
            return ScriptedReply(tool_calls=[("fly_to_the_moon", {"request_heartbeat": True})])
        case "endless-heartbeats":
            args = {"query": "anything", "request_heartbeat": True}
            return ScriptedReply(tool_calls=[("archival_memory_search", args)])
        case "silent-note":  # a memory call without request_heartbeat, every time: the model never replies
            return ScriptedReply(tool_calls=[("archival_memory_insert", {"content": "a note that never ends"})])
    raise ValueError(f"unknown fault {mode!r}")


MODEL_DOWN_FAULTS = ("429", "500", "non-json", "html", "empty", "empty-object", "truncated")


@dataclass
class FaultyModel:
    """Handler: the turn of a ``fault:<mode>`` message meets that fault; other turns go to the Brain."""

    wire: str
    brain: Brain = field(default_factory=Brain)
    seen: list[str] = field(default_factory=list)  # the fault mode (or "brain") of each request

    saves_under_pressure: bool = False  # a memory-pressure alert makes the model save a note and stop (no heartbeat)

    def __call__(self, request: ObservedRequest) -> ScriptedReply:
        mode = self.fault_of(request)
        self.seen.append(mode or "brain")
        if mode == "note":  # a note without request_heartbeat; the model answers once reminded
            if request.messages[-1]["content"].startswith(REPLY_NEEDED_START):
                return ScriptedReply(tool_calls=[("send_message", {"message": "Noted."})])
            return ScriptedReply(tool_calls=[("archival_memory_insert", {"content": "the user likes notes"})])
        if mode:
            return fault_reply(mode, self.wire)
        if self.saves_under_pressure and _pressure_alert_is_new(request):
            note = f"Saved before the flush ({len(request.messages)} messages in context)."
            return ScriptedReply(tool_calls=[("archival_memory_insert", {"content": note})])
        return self.brain(request)

    @staticmethod
    def fault_of(request: ObservedRequest) -> str | None:
        for message in reversed(request.messages):
            if message["role"] == "user" and not message["content"].lstrip().startswith("[system]"):
                # on the Anthropic wire the messages of turns that failed are merged into one: read the last line
                text = user_text(message["content"]).splitlines()[-1]
                return text.removeprefix("fault:").strip() if text.startswith("fault:") else None
        return None


def _pressure_alert_is_new(request: ObservedRequest) -> bool:
    """Whether a memory-pressure alert arrived since the model last spoke."""
    for message in reversed(request.messages):
        if message["role"] == "assistant":
            return False
        if message["role"] == "user" and PRESSURE_ALERT_START in message["content"]:
            return True
    return False


def requests_for(seen: list[str], mode: str) -> int:
    return sum(1 for item in seen if item == mode)


def chat_env(settings: Settings) -> dict[str, str]:
    """Environment for a `membot` subprocess with ``settings``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MEMBOT_", "ANTHROPIC_", "OPENAI_"))}
    return {**base, **env_for(settings), "HF_HUB_OFFLINE": "1"}


def membot_chat(user: str, lines: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> Chat:
    """Pipe ``lines`` into `membot chat --user USER`; the process's exit code, stdout lines and stderr."""
    stdin = "".join(f"{line}\n" for line in lines).encode()
    result = subprocess.run(
        [*MEMBOT, "chat", "--user", user], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=timeout
    )
    return Chat(result.returncode, result.stdout.decode().splitlines(), result.stderr.decode())


@dataclass
class Chat:
    code: int
    stdout: list[str]
    stderr: str

    def notices(self) -> list[str]:
        return [line.removeprefix("membot: ") for line in self.stderr.splitlines() if line.startswith("membot: ")]


async def recall_texts(settings: Settings, agent: AgentKey) -> list[str]:
    """Every text recall memory holds for ``agent`` (waits until it is indexed), read by a fresh process's stores."""
    async with open_memory_app(settings) as app:
        exported = await app.admin.export(agent)
    return [str(item["text"]) for item in exported["recall"]]
