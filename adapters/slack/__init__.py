"""membot on Slack: a Bolt ``AsyncApp`` in Socket Mode or HTTP mode (see ``app.py``).

Modules: ``app`` (transport, adapter), ``listeners`` (Bolt registrations), ``conversation`` (message → turn),
``normalize`` (payload → InboundMessage, the answer decision), ``sink`` (replies in threads), ``mrkdwn``
(Markdown → mrkdwn, splitting), ``commands`` (/memory), ``home`` (App Home), ``blocks`` (Block Kit), ``files``
(DM file imports), ``directory`` (cached look-ups), ``deps`` (shared dependencies, background tasks).
"""

from __future__ import annotations

from bot.core.ports import PlatformAdapter
from bot.services import Services

from .app import SlackAdapter, SlackMode, choose_mode


def build_slack_adapter(services: Services) -> PlatformAdapter:
    """The Slack adapter for ``membot run``; raises ConfigError when the Slack settings cannot work."""
    return SlackAdapter(services)


__all__ = ["SlackAdapter", "SlackMode", "build_slack_adapter", "choose_mode"]
