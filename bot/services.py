"""What a platform adapter gets from the composition root: everything it may call, nothing it may not."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.admin.authz import Authorizer
from bot.admin.memory import MemoryAdmin
from bot.admin.repair import MemoryRepair
from bot.core.ports import ChannelModes, Throttle
from bot.ops.connections import PlatformConnections
from bot.runtime.heartbeat import ProactiveControl
from bot.runtime.runtime import Runtime
from bot.settings import Settings


@dataclass(frozen=True)
class Services:
    """The runtime (turns), memory commands and repairs, authorization, rate limits/dedupe, channel modes and
    settings; ``proactive`` turns a user's proactive messages on or off (for the platform commands); adapters
    report their platform connections to ``connections`` (read by ``/healthz``)."""

    runtime: Runtime
    admin: MemoryAdmin
    repair: MemoryRepair
    authz: Authorizer
    throttle: Throttle
    channel_modes: ChannelModes
    settings: Settings
    proactive: ProactiveControl
    connections: PlatformConnections = field(default_factory=PlatformConnections)  # adapters report, /healthz reads
