"""Background loops stop even when a library swallows their CancelledError (redis-py did, mid-command, during a
Redis pause: the lock watchdog then renewed forever and the turn that awaited it never answered)."""

from __future__ import annotations

import asyncio

from bot.core.tasks import cancel_requested, stop_task


async def _swallowing_call() -> None:
    """Like the redis-py call seen in the field: a cancel that lands while it waits is lost, it returns normally."""
    try:
        await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        await asyncio.sleep(0.01)


async def test_a_loop_that_checks_cancel_requested_ends_although_its_cancel_was_swallowed() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while not cancel_requested():
            rounds += 1
            await _swallowing_call()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.02)
    assert await stop_task(task, within=5.0)
    assert task.done() and rounds >= 1


async def test_stop_task_gives_up_after_its_bound_instead_of_waiting_forever() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():  # ignores cancel_requested(): the bug this guards against
            await _swallowing_call()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.02)
    assert not await stop_task(task, within=0.2)
    assert not task.done()
    release.set()
    await asyncio.wait({task}, timeout=5.0)
    assert task.done()


async def test_stop_task_reports_a_failed_task_without_raising() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    assert await stop_task(task, within=1.0)
