"""``alert_mute``: the owner mutes a drift alert for a week.

The same flow as :mod:`bot.listeners.actions.alert_acknowledge`; the message shows
until when the alert is muted.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.listeners.actions.alert_acknowledge import AlertAcknowledge
from commands import alerts


class AlertMute(AlertAcknowledge):
    """The "Mute for 7 days" button listener."""

    use_case: Callable[..., alerts.AlertView] = staticmethod(alerts.mute)
