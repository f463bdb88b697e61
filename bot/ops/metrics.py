"""Prometheus metrics: one ``Metrics`` per app (its own registry, so tests and benchmarks stay isolated).

Callers use the narrow ``record`` methods; nothing else touches prometheus_client. ``render()`` is what
``GET /metrics`` serves. Names and labels:

- ``membot_turn_seconds{kind}``: a turn from its arrival to its end (lock wait included); ``kind`` is
  ``message`` (a user spoke) or ``event`` (a heartbeat);
- ``membot_model_request_seconds{provider,outcome}`` and ``membot_model_tokens_total{provider,kind}``
  (``input``: whole prompts, cached parts included; ``output``; ``cache_read`` and ``cache_write``: the input
  tokens read from and written to the provider's prompt cache, from its usage fields): every model call, turns
  and summaries alike;
- ``membot_memory_operations_total{operation,outcome}``: the model's memory functions (``core_memory_append``,
  ``archival_memory_search``, …) with ``ok`` or ``failed``;
- ``membot_queue_evictions_total`` and ``membot_queue_evicted_messages_total``: context flushes into the summary;
- ``membot_errors_total{kind}``: ``model``, ``context_overflow``, ``timeout``, ``storage``, ``internal``;
- ``membot_active_agents`` and ``membot_turns_in_flight``: agents with a turn in progress in this process, and
  their turns (several messages of one agent wait for its lock);
- ``membot_recall_indexed_total``, ``membot_recall_index_failures_total`` and ``membot_recall_set_aside_total``:
  the background recall indexer of this process (entries indexed, failed attempts, entries moved to dead letters).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bot.core.tools import tool_specs
from bot.llm.types import ContextOverflowError, ModelError, Usage

__all__ = ["CONTENT_TYPE", "Metrics", "error_kind"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
MODEL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


@functools.cache
def _memory_functions() -> frozenset[str]:
    return frozenset(spec.name for spec in tool_specs())


def error_kind(exc: BaseException) -> str:
    """A small, fixed set of labels for ``membot_errors_total`` (never the message: it may hold user text)."""
    if isinstance(exc, ContextOverflowError):
        return "context_overflow"
    if isinstance(exc, ModelError):
        return "model"
    if isinstance(exc, TimeoutError):
        return "timeout"
    module = type(exc).__module__
    if isinstance(exc, ConnectionError | OSError) or module.startswith(("redis", "qdrant_client", "grpc")):
        return "storage"
    return "internal"


class Metrics:
    """Every metric membot exports, registered in ``registry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._turns = Histogram(
            "membot_turn_seconds", "Time from a turn's arrival to its end.", ["kind"], buckets=TURN_BUCKETS, registry=r
        )
        self._model = Histogram(
            "membot_model_request_seconds",
            "Model call latency, retries included.",
            ["provider", "outcome"],
            buckets=MODEL_BUCKETS,
            registry=r,
        )
        self._tokens = Counter("membot_model_tokens", "Tokens the model reported.", ["provider", "kind"], registry=r)
        self._memory = Counter(
            "membot_memory_operations", "Memory functions the model called.", ["operation", "outcome"], registry=r
        )
        self._evictions = Counter("membot_queue_evictions", "Context flushes into the summary.", registry=r)
        self._evicted = Counter("membot_queue_evicted_messages", "Messages evicted from context queues.", registry=r)
        self._errors = Counter("membot_errors", "Errors, by kind.", ["kind"], registry=r)
        self._active_agents = Gauge("membot_active_agents", "Agents with a turn in progress here.", registry=r)
        self._in_flight = Gauge("membot_turns_in_flight", "Turns in progress here.", registry=r)
        for kind in ("model", "context_overflow", "timeout", "storage", "internal"):
            self._errors.labels(kind)  # export zeros, so rates work from the first scrape

    def track_active(self, agents: Callable[[], int], turns: Callable[[], int]) -> None:
        """Read the two gauges from the turn tracker at scrape time."""
        self._active_agents.set_function(lambda: float(agents()))
        self._in_flight.set_function(lambda: float(turns()))

    def track_indexer(self, read: Callable[[], tuple[int, int, int]]) -> None:
        """Export the recall indexer's (indexed, failures, set aside) counters, read at scrape time."""
        self.registry.register(_IndexerCollector(read))

    def turn(self, kind: str, seconds: float) -> None:
        self._turns.labels(kind).observe(seconds)

    def model_call(self, provider: str, seconds: float, usage: Usage | None, error: BaseException | None) -> None:
        outcome = "ok" if error is None else error_kind(error)
        self._model.labels(provider, outcome).observe(seconds)
        if usage is not None:
            self._tokens.labels(provider, "input").inc(usage.input_tokens)
            self._tokens.labels(provider, "output").inc(usage.output_tokens)
            self._tokens.labels(provider, "cache_read").inc(usage.cache_read_tokens)
            self._tokens.labels(provider, "cache_write").inc(usage.cache_write_tokens)

    def memory_operation(self, operation: str, ok: bool) -> None:
        """A function the model called: memory functions are counted (an unknown name as ``unknown``);
        ``send_message`` talks to the user and is not a memory operation."""
        if operation == "send_message":
            return
        label = operation if operation in _memory_functions() else "unknown"
        self._memory.labels(label, "ok" if ok else "failed").inc()

    def evicted(self, messages: int) -> None:
        self._evictions.inc()
        self._evicted.inc(messages)

    def error(self, exc: BaseException) -> None:
        self._errors.labels(error_kind(exc)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _IndexerCollector(Collector):
    def __init__(self, read: Callable[[], tuple[int, int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        indexed, failures, set_aside = self._read()
        yield CounterMetricFamily("membot_recall_indexed", "Recall entries indexed by this process.", value=indexed)
        yield CounterMetricFamily("membot_recall_index_failures", "Failed recall indexing attempts.", value=failures)
        yield CounterMetricFamily(
            "membot_recall_set_aside", "Recall entries moved to the dead-letter stream.", value=set_aside
        )
