"""The Slack adapter's tracked background tasks: a failure is logged with its traceback, never lost or left over."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.slack.deps import BackgroundTasks


async def test_a_failing_task_is_logged_and_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks()
    finished: list[str] = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def works() -> None:
        await asyncio.sleep(0)
        finished.append("works")

    with caplog.at_level(logging.ERROR, logger="adapters.slack.deps"):
        tasks.spawn(fails(), "event:Ev1")
        tasks.spawn(works(), "event:Ev2")
        await tasks.drain()
    assert finished == ["works"] and len(tasks) == 0
    [record] = [r for r in caplog.records if r.message == "slack background task failed"]
    assert record.task == "slack:event:Ev1" and record.exc_info is not None  # type: ignore[attr-defined]
    assert "boom" in str(record.exc_info[1])


async def test_close_cancels_what_outlives_the_grace() -> None:
    tasks = BackgroundTasks()
    tasks.spawn(asyncio.sleep(60), "slow")
    await tasks.close(grace=0.01)
    assert len(tasks) == 0
    tasks.spawn(asyncio.sleep(0), "late")  # dropped: the adapter is stopping
    assert len(tasks) == 0
