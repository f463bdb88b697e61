"""Consolidation: full core blocks are condensed into archival memory; near-duplicate notes are merged, never lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from adapters.console import console_agent, console_message
from bot.app import App, open_app
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import ArchivalEntry, DuplicatePair, SearchHit
from bot.runtime.heartbeat import Status, keep_and_drop, merged_text
from bot.settings import Settings
from tests.heartbeat.conftest import heartbeats_for, human_block
from tests.scenario import RecordingSink, eventually
from tests.standins.llm_server import ScriptedLLMServer

FLO = console_agent("flo")
TUNA = "Dora's cat Pixel likes tuna, sleeps on the red sofa all afternoon and hates the vacuum cleaner."
SALMON = "Dora's cat Pixel likes salmon, sleeps on the red sofa all afternoon and hates the noisy vacuum cleaner."
DETAILS = [
    "Detail: works night shifts as a nurse at the city hospital, ward 4B.",
    "Detail: her sister Ana lives in Porto and visits every August.",
    "Detail: training for the Berlin half marathon in the autumn.",
]


async def fill_core(app: App, agent: AgentKey) -> None:
    await app.stores.core.ensure(agent, {"persona": "I am membot.", "human": "Name: Flo"}, cause="test")
    for line in DETAILS:
        await app.stores.core.append(agent, "human", line, cause="test")


async def test_a_full_core_block_is_condensed_into_archival_memory(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    async with open_app(make_settings(MEMBOT_CORE_BLOCK_LIMIT=260)) as app:
        await fill_core(app, FLO)
        size = len(await human_block(app, FLO))
        assert size > 0.7 * 260
        outcome = await heartbeats_for(app).consolidate(FLO)
        assert outcome.status is Status.DONE and outcome.condensed == ("human",)
        assert (
            await human_block(app, FLO) == "Name: Flo\n[private] Details are in archival memory."
        )  # a heartbeat: private
        [note] = await app.stores.archival.export(FLO)
        assert all(line in note["text"] for line in DETAILS) and note["source"] == "reflection"
        event = llm.requests[0].messages[-1]["content"]
        assert event.startswith("[system] Heartbeat (consolidation)") and f"human {size}/260 characters" in event

        requests = len(llm.requests)
        again = await heartbeats_for(app).consolidate(FLO)  # well under the limit now: no model call
        assert again.condensed == () and len(llm.requests) == requests


async def test_near_duplicate_notes_are_merged_with_a_copy_of_each(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    async with open_app(make_settings()) as app:
        await fill_core(app, FLO)
        now = datetime.now(UTC)
        for text, when in ((TUNA, now - timedelta(days=2)), (SALMON, now), ("Dora is a nurse.", now)):
            assert (await app.stores.archival.insert(ArchivalEntry(FLO, text, when))).stored
        outcome = await heartbeats_for(app).consolidate(FLO)
        assert outcome.merged == 1 and outcome.condensed == () and llm.requests == []

        notes = {n["text"].split(",")[0]: n for n in await app.stores.archival.export(FLO)}
        assert len(notes) == 2
        merged = notes["Dora's cat Pixel likes salmon"]
        assert merged["text"] == f"{SALMON}\n{TUNA}"  # the longer note kept, the other's extra words added
        assert [(copy["text"], copy["timestamp"][:10]) for copy in merged["merged_from"]] == [
            (TUNA, f"{now - timedelta(days=2):%Y-%m-%d}")
        ]
        found = await app.stores.archival.search(FLO, "tuna", 0, Scope.PRIVATE)
        assert found.hits[0].text == merged["text"]
        [audited] = await app.stores.audit.history(FLO, 1)
        assert (audited.kind, audited.cause) == ("archival_merge", "heartbeat:consolidation")
        assert audited.detail["kept"] == merged["id"] and audited.detail["dropped"] == [merged["merged_from"][0]["id"]]
        assert (await heartbeats_for(app).consolidate(FLO)).merged == 0


async def test_the_consolidation_job_runs_periodically_for_active_agents(
    llm: ScriptedLLMServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        MEMBOT_REFLECT_AFTER_MINUTES=10, MEMBOT_CONSOLIDATE_EVERY_MINUTES=0.01, MEMBOT_CORE_BLOCK_LIMIT=260
    )
    async with open_app(settings) as app:
        assert app.runtime is not None
        await fill_core(app, FLO)
        await app.start([])
        scheduler = app.scheduler
        await app.runtime.handle(console_message("flo", "hi"), RecordingSink())

        async def condensed() -> bool:
            return "Details are in archival memory." in await human_block(app, FLO)

        await eventually(condensed, what="the consolidation job")
        await eventually(lambda: sum(job == "consolidate:console:flo" for job, _ in scheduler.runs) >= 2)


def test_merge_rules() -> None:
    old = SearchHit("a", "Flo runs.", datetime(2024, 1, 1, tzinfo=UTC), 0.0)
    new = SearchHit("b", "Flo runs marathons.", datetime(2024, 2, 1, tzinfo=UTC), 0.0)
    assert keep_and_drop(DuplicatePair(old, new, 0.9)) == ("b", "a", "Flo runs marathons.")
    same_length = SearchHit("c", "Flo swims.", datetime(2024, 3, 1, tzinfo=UTC), 0.0)
    assert keep_and_drop(DuplicatePair(old, same_length, 0.9))[0] == "c"  # a tie keeps the newer note
    assert merged_text("Flo runs marathons", "flo RUNS") == "Flo runs marathons"
    assert merged_text("Flo runs", "Flo swims") == "Flo runs\nFlo swims"
