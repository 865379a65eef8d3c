"""``alert_ack``: the owner or an approver acknowledges a drift alert.

The alert message is updated in place to show who acknowledged it. Others get a
private "not authorised"; a repeated click is a quiet no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.listeners.actions.payload import message_location, note, number
from bot.listeners.handler import Handler
from bot.listeners.messages import problem, update_alert_message
from commands import alerts
from segments.errors import SegopsError


class AlertAcknowledge(Handler):
    """The Acknowledge button listener, bound to one engine and settings."""

    use_case: Callable[..., alerts.AlertView] = staticmethod(alerts.acknowledge)

    def run(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Apply the use case to the alert the button names; the message shows the outcome."""
        channel, ts = message_location(body)
        alert_id = number(action)
        if alert_id is None:
            note(body, respond, client, ":warning: this button does not name an alert")
            return
        try:
            alert = self.use_case(
                self.engine,
                alert_id=alert_id,
                user=body["user"]["id"],
                budget=self.settings.write_budget,
            )
        except SegopsError as error:
            note(body, respond, client, problem(error))
            return
        if alert.changed and channel and ts:
            update_alert_message(
                client,
                self.engine,
                self.settings,
                alert,
                channel=channel,
                ts=ts,
                posted_blocks=(body.get("message") or {}).get("blocks"),
            )
