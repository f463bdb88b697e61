"""Logging: structlog rendering on top of stdlib logging, to stderr.

Message bodies and secrets are never logged at INFO; turn logs carry the agent key and counts only.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "WARNING", log_format: str = "console") -> None:
    """Route stdlib and structlog records through one structlog formatter on stderr: one readable line per record
    (``console``), or one JSON object per line for log shippers (``json``; exceptions as a ``exception`` field)."""
    processors: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderers(log_format),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "openai", "anthropic", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def _renderers(log_format: str) -> list[structlog.types.Processor]:
    if log_format == "json":
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    if log_format == "console":
        return [structlog.dev.ConsoleRenderer(colors=False)]
    raise ValueError(f"unknown log format {log_format!r}; use console or json")
