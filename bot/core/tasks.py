"""Stopping background tasks reliably.

redis-py (seen with 8.1 on Python 3.11) can swallow a ``CancelledError`` that lands while a command waits on a
slow server: the command returns normally, the task's ``cancelling()`` count stays raised, and a loop that only
relies on the exception goes on forever, so whoever awaits the cancelled task waits forever too. Background loops
check ``cancel_requested()``; owners stop them with ``stop_task``, which never waits unbounded.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["cancel_requested", "stop_task"]

log = logging.getLogger(__name__)


def cancel_requested() -> bool:
    """Whether the current task was asked to stop, even if its ``CancelledError`` was lost on the way."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_task(task: asyncio.Task[object], *, within: float) -> bool:
    """Cancel ``task`` and wait for it to end, at most ``within`` seconds; False (and a warning) if it did not.

    An exception the task ended with is logged, not raised: stopping a helper must not fail its owner."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        log.warning("background task %s did not stop within %gs", task.get_name(), within)
        return False
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("background task %s had failed", task.get_name(), exc_info=error)
    return True
