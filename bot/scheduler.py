"""Where heartbeat jobs stored by membot before the move to ``bot.ops.scheduler`` find their functions.

APScheduler keeps each job's function by import path (``bot.scheduler:reflect_job``) in Redis; a path that no
longer imports would set those jobs aside as unreadable (quarantined with their agent) after an upgrade. New jobs
are stored as ``bot.ops.scheduler:...``; this module keeps the old ones readable and has nothing else.
"""

from __future__ import annotations

from bot.ops.scheduler import consolidate_job, reflect_job

__all__ = ["consolidate_job", "reflect_job"]
