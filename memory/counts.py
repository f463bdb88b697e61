"""Per-agent point counts, cached: a filtered count scans every point in embedded Qdrant, and the system prompt
shows the counts on every step.

A count is recomputed when it is older than ``ttl`` seconds; the store's own writes in this process keep it
current in between (``add`` after an insert, ``forget`` after a delete), so only another process's writes can
make it lag, by at most ``ttl``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

COUNT_CACHE_SECONDS = 60.0


class CountCache:
    def __init__(self, ttl: float = COUNT_CACHE_SECONDS, size: int = 4096) -> None:
        self._ttl = ttl
        self._size = size
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def get(self, agent: str, compute: Callable[[], Awaitable[int]]) -> int:
        cached = self._counts.get(agent)
        if cached is None or time.monotonic() - cached[1] > self._ttl:
            cached = (await compute(), time.monotonic())
            self._counts[agent] = cached
            while len(self._counts) > self._size:
                self._counts.popitem(last=False)
        self._counts.move_to_end(agent)
        return cached[0]

    def add(self, agent: str, added: int) -> None:
        """``added`` new points were stored for ``agent`` (a no-op when its count is not cached)."""
        cached = self._counts.get(agent)
        if cached is not None:
            self._counts[agent] = (cached[0] + added, cached[1])

    def forget(self, agent: str) -> None:
        """Points of ``agent`` were deleted: count them again next time."""
        self._counts.pop(agent, None)
