"""``alert_propose``: open the change-proposal form for a drift alert's segment."""

from __future__ import annotations

from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.listeners.actions.payload import message_location, note, number
from bot.listeners.handler import Handler
from bot.listeners.messages import problem
from bot.listeners.views.modals import proposal_modal
from commands import alerts, catalog
from segments.errors import SegopsError


class AlertPropose(Handler):
    """The "Open proposal" button listener, bound to one engine and settings."""

    def run(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Open the change-proposal form for the alert's segment, the alert as the reason."""
        channel, _ts = message_location(body)
        alert_id = number(action)
        if alert_id is None:
            note(body, respond, client, ":warning: this button does not name an alert")
            return
        try:
            ctx = alerts.alert_context(
                self.engine, alert_id, privacy_floor=self.settings.privacy_floor
            )
            shown = catalog.show_segment(
                self.engine, ctx["segment"]["name"], privacy_floor=self.settings.privacy_floor
            )
        except SegopsError as error:
            note(body, respond, client, problem(error))
            return
        clicked = next((a for a in ctx["alerts"] if a["id"] == alert_id), None)
        reason = f"Drift alert of {ctx['as_of']}: {clicked['message']}" if clicked else ""
        modal = proposal_modal(
            segment=shown["definition"],
            metadata={"segment": shown["name"], "channel": channel},
            reason=reason,
        )
        client.views_open(trigger_id=body["trigger_id"], view=modal)
