"""Every Redis key membot uses, in one place.

On a Redis Cluster, the keys of one script or MULTI transaction must share a hash slot. So:

- per-agent keys wrap the agent key in a hash tag (``{discord:123:456}``): all keys of one agent share a slot;
- the recall outbox's five keys share the tag ``{recall}``, the scheduler's two keys the tag ``{scheduler}``;
- the global indexes (``agents``, ``activity-index``), the per-person rate-limit and dedupe flags and the firing
  guards have no tag: nothing changes them in the same script or transaction as another key (the stores write
  them in separate commands, and say why that is safe where it happens).

``tests/memory/test_cluster_slots.py`` checks each group's slot.
"""

from __future__ import annotations

from bot.core.events import AgentKey

DEFAULT_PREFIX = "membot"


class RedisKeys:
    """Builds key names under a prefix (default ``membot``; tests pass a unique one to isolate themselves)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or any(c in prefix for c in " {}"):
            raise ValueError(f"invalid Redis key prefix {prefix!r}: use a non-empty name without spaces or braces")
        self.prefix = prefix

    def _agent(self, kind: str, agent: AgentKey) -> str:
        return f"{self.prefix}:{kind}:{{{agent}}}"

    # --- core memory -------------------------------------------------------------------------------------
    def core_blocks(self, agent: AgentKey) -> str:
        """Hash: block label -> block text."""
        return self._agent("core", agent)

    def core_limits(self, agent: AgentKey) -> str:
        """Hash: block label -> character limit of that block."""
        return self._agent("core-limits", agent)

    def meta(self, agent: AgentKey) -> str:
        """Hash: ``created`` and ``modified`` (RFC 3339 UTC) of the agent's memory."""
        return self._agent("meta", agent)

    def core_versions(self, agent: AgentKey) -> str:
        """Hash: core version number -> JSON of the whole core memory after that write (the newest N are kept)."""
        return self._agent("core-versions", agent)

    def core_version(self, agent: AgentKey) -> str:
        """Counter: the agent's newest core version (every core write adds one; survives a reset)."""
        return self._agent("core-version", agent)

    def audit(self, agent: AgentKey) -> str:
        """Stream: the agent's audit trail, one entry per memory write (see ``memory.redis.audit``)."""
        return self._agent("audit", agent)

    def agents(self) -> str:
        """Set: string forms of every agent that has core memory."""
        return f"{self.prefix}:agents"

    # --- working memory ----------------------------------------------------------------------------------
    def queue(self, agent: AgentKey) -> str:
        """List: the message queue, oldest first, each item ``ChatMessage.to_json()``."""
        return self._agent("queue", agent)

    def queue_generation(self, agent: AgentKey) -> str:
        """String: a random token replaced whenever the queue changes other than by appending (eviction)."""
        return self._agent("queue-gen", agent)

    def summary_public(self, agent: AgentKey) -> str:
        """String: the summary of only the public messages evicted (what a channel turn is shown)."""
        return self._agent("summary-public", agent)

    def summary(self, agent: AgentKey) -> str:
        """String: recursive summary of the messages evicted from the queue."""
        return self._agent("summary", agent)

    def pressure_alerted(self, agent: AgentKey) -> str:
        """Flag: the memory-pressure alert was raised in the current eviction cycle (cleared by eviction)."""
        return self._agent("pressure", agent)

    # --- recall outbox (one hash tag: the scripts touching these keys stay legal on a cluster) ------------------
    def recall_outbox(self) -> str:
        """Stream: recall entries waiting to be embedded and indexed (consumer group ``indexers``)."""
        return f"{self.prefix}:outbox:{{recall}}"

    def recall_outbox_pending(self) -> str:
        """Hash: agent key -> entries of that agent in the outbox not yet indexed."""
        return f"{self.prefix}:outbox-pending:{{recall}}"

    def recall_outbox_dead(self) -> str:
        """Stream: outbox entries that could not be indexed after retries, kept for an admin to inspect."""
        return f"{self.prefix}:outbox-dead:{{recall}}"

    def recall_outbox_epochs(self) -> str:
        """Hash: digest of an agent key -> the agent's erase epoch (every erase adds one). Each outbox entry carries
        the epoch it was stored under; an indexer drops an entry whose epoch is older (see ``memory.redis.outbox``)."""
        return f"{self.prefix}:outbox-epochs:{{recall}}"

    def recall_forgotten(self) -> str:
        """Sorted set: recall point ids forgotten (score: when, epoch seconds); no indexer writes them again."""
        return f"{self.prefix}:outbox-forgotten:{{recall}}"

    def recall_latest(self, agent: AgentKey) -> str:
        """Hash: channel -> "time|point id" of the agent's latest indexed message there (for context mixing)."""
        return self._agent("recall-latest", agent)

    def memory_counts(self, agent: AgentKey) -> str:
        """Hash: ``recall`` and ``archival`` -> how many messages and notes the agent has in Qdrant."""
        return self._agent("counts", agent)

    def memory_counts_ready(self) -> str:
        """Flag: every agent's counts were built from Qdrant (``memory.redis.counts.ensure_counted``)."""
        return f"{self.prefix}:counts-ready"

    def store_registration(self) -> str:
        """Hash: this namespace's one Qdrant store (kind, id, path, host, since): ``memory.redis.store_identity``."""
        return f"{self.prefix}:store"

    # --- coordination ------------------------------------------------------------------------------------
    def lock(self, agent: AgentKey) -> str:
        """String: the agent's cross-process lock, its value the holding's fencing token ``<micros>:<random>``, with
        a short lease (``memory.redis.locks``). Fenced writes compare their token with it in the same script."""
        return self._agent("lock", agent)

    # --- corrupt state -------------------------------------------------------------------------------------
    def quarantine(self, agent: AgentKey) -> str:
        """List: JSON records of stored items that did not parse, moved aside (``memory.redis.quarantine``)."""
        return self._agent("quarantine", agent)

    def rate_limit(self, person: str, window: int) -> str:
        """Counter: messages of ``person`` (``adapters.keys.person_of``) in the one-minute window ``window``."""
        return f"{self.prefix}:rate:{person}:{window}"

    def inbound_seen(self, person: str, event_id: str) -> str:
        """Flag (SET NX with TTL): an event of ``person`` already handled (redelivery dedupe)."""
        return f"{self.prefix}:seen:{person}:{event_id}"

    def person_patterns(self, person: str) -> list[str]:
        """SCAN patterns of the rate-limit counters and dedupe flags of ``person``."""
        return [f"{self.prefix}:rate:{person}:*", f"{self.prefix}:seen:{person}:*"]

    def channel_modes(self, platform: str) -> str:
        """Hash: channel id → reply mode ("always" or "mention") set by admins on ``platform``."""
        return f"{self.prefix}:channels:{platform}"

    # --- heartbeats ----------------------------------------------------------------------------------------
    def activity(self, agent: AgentKey) -> str:
        """Hash: last message and reflection times, messages since, private flag, last reply address (JSON)."""
        return self._agent("activity", agent)

    def activity_index(self) -> str:
        """Sorted set: agent key -> epoch seconds of the user's last message."""
        return f"{self.prefix}:activity-index"

    def proactive(self, agent: AgentKey) -> str:
        """Hash: the user's proactive-message choice (enabled, quiet_hours, timezone, max_per_day)."""
        return self._agent("proactive", agent)

    def proactive_sent(self, agent: AgentKey, day: str) -> str:
        """Counter (with TTL): proactive messages sent to the agent's user on local date ``day``."""
        return f"{self._agent('proactive-sent', agent)}:{day}"

    def proactive_sent_pattern(self, agent: AgentKey) -> str:
        """SCAN pattern of every daily proactive counter of the agent."""
        return f"{self._agent('proactive-sent', agent)}:*"

    def job_run_guard(self, job_id: str, fire_time: str) -> str:
        """Flag (SET NX with TTL): one scheduled firing of a job, so it runs once across processes."""
        return f"{self.prefix}:jobrun:{job_id}:{fire_time}"

    def job_run_guard_pattern(self, job_id: str) -> str:
        """SCAN pattern of every firing guard of one job."""
        return f"{self.prefix}:jobrun:{job_id}:*"

    # the job store changes both in one MULTI: one hash tag keeps that legal on a cluster
    def scheduler_jobs(self) -> str:
        """Hash used by the APScheduler Redis job store for jobs."""
        return f"{self.prefix}:scheduler:jobs:{{scheduler}}"

    def scheduler_run_times(self) -> str:
        """Sorted set used by the APScheduler Redis job store for next run times."""
        return f"{self.prefix}:scheduler:run_times:{{scheduler}}"

    def agent_keys(self, agent: AgentKey) -> list[str]:
        """Every per-agent key holding memory (not the lock, not the audit trail): what a full erase removes."""
        return [
            self.core_blocks(agent),
            self.core_limits(agent),
            self.meta(agent),
            self.core_versions(agent),
            self.core_version(agent),
            self.queue(agent),
            self.queue_generation(agent),
            self.summary(agent),
            self.summary_public(agent),
            self.pressure_alerted(agent),
            self.recall_latest(agent),
            self.memory_counts(agent),
            self.quarantine(agent),
        ]
