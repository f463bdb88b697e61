"""Two real `membot run` processes (Slack HTTP mode, as replicas behind a load balancer) share one Redis.

Messages of two users are posted to both processes at once, alternating. The scripted model records, per user,
how many of its requests were in flight together: one agent's turns never overlap, though the processes and the
agents run side by side. Every message reaches the agent's queue (Redis) and recall once, and is answered once.

What this does not cover: each process keeps recall in its own embedded Qdrant here (no Qdrant server can run on
this machine), so recall is checked as the union of the two stores, and a search in one process cannot see what
the other stored. membot refuses two embedded stores on one Redis namespace (memory/redis/store_identity.py), so the
test gives both directories one store id, standing in for the one shared store a Qdrant server would be. A deployment
sets MEMBOT_REPLICAS and QDRANT_URL, and membot refuses replicas without it (tests/ops/test_deployment.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
from pathlib import Path

import aiohttp

from bot.app import open_memory_app
from bot.core.events import AgentKey
from memory.redis.store_identity import STORE_ID_FILE
from tests.ops.slack_process import Running, membot_run, posted, slack_settings
from tests.scenario import eventually
from tests.standins.brain import Brain
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer
from tests.standins.slack_api import SlackStandIn

USERS = {"UANN": "Ann", "UBOB": "Bob"}
MESSAGES_EACH = 12
HEADER = re.compile(r"^\[[^\]]* UTC\] (\w+) \(direct message", re.MULTILINE)


def author_of(request: ObservedRequest) -> str | None:
    """The user whose agent made the request (every queue holds one user's messages)."""
    for message in request.messages:
        if message["role"] == "user" and (found := HEADER.search(message["content"])):
            return found.group(1)
    return None


async def test_two_processes_never_overlap_one_agents_turns_and_lose_no_message(
    llm: ScriptedLLMServer, brain: Brain, key_prefix: str, tmp_path: Path
) -> None:
    llm.concurrency_key = author_of
    llm.set_handler(lambda request: dataclasses.replace(brain(request), delay=0.05))  # widen each turn
    texts = {user: [f"message {i} from {name}" for i in range(MESSAGES_EACH)] for user, name in USERS.items()}
    async with SlackStandIn() as slack, aiohttp.ClientSession() as session:
        for user, name in USERS.items():
            slack.add_user(user, name)
        settings = [
            slack_settings(llm, key_prefix, tmp_path / name, slack, MEMBOT_RATE_LIMIT_PER_MINUTE=1000)
            for name in ("one", "two")  # each its own embedded Qdrant (see the module docstring)
        ]
        for each in settings:  # one store id: the registration sees one store (see the module docstring)
            (each.data_dir / "qdrant").mkdir(parents=True)
            (each.data_dir / "qdrant" / STORE_ID_FILE).write_text("shared-by-two-processes\n")
        async with (
            membot_run(settings[0], slack, session, tmp_path) as one,
            membot_run(settings[1], slack, session, tmp_path) as two,
        ):
            processes: list[Running] = [one, two]
            sends = [
                processes[(i + j) % 2].dm(user, text)
                for j, (user, user_texts) in enumerate(texts.items())
                for i, text in enumerate(user_texts)
            ]
            assert set(await asyncio.gather(*sends)) == {200}
            expected = {f"echo: {text}" for user_texts in texts.values() for text in user_texts}

            async def all_answered() -> bool:
                return expected <= set(posted(slack))

            await eventually(all_answered, within=120, what="every message to be answered")
            for running in processes:
                running.process.send_signal(signal.SIGTERM)
            outputs = [await running.stderr_after_exit() for running in processes]
            assert [running.process.returncode for running in processes] == [0, 0], outputs
    assert llm.max_in_flight_by == {"Ann": 1, "Bob": 1}, "one agent's turns never ran at once"
    assert sorted(posted(slack)) == sorted(expected), "each message answered exactly once"
    recall: dict[str, list[str]] = {user: [] for user in USERS}
    for each in settings:
        async with open_memory_app(each) as app:
            for user in USERS:
                agent = AgentKey("slack", SlackStandIn.team_id, user)
                exported = await app.admin.export(agent)
                recall[user].extend(item["text"] for item in exported["recall"] if item["role"] == "user")
                if each is settings[0]:
                    queue = [m.content for m in await app.stores.working.messages(agent) if m.role == "user"]
                    assert sorted(text for q in queue for text in texts[user] if q.endswith(f"\n{text}")) == sorted(
                        texts[user]
                    ), "every message is in the shared queue once"
                    assert len([q for q in queue if "message " in q]) == MESSAGES_EACH
    for user, user_texts in texts.items():
        assert sorted(recall[user]) == sorted(user_texts), "every message reached recall once"
