"""``log_feedback``: the message shortcut "Log as field feedback" opens the form."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.listeners.handler import Handler
from bot.listeners.views.modals import feedback_modal
from bot.listeners.workspace import active_segment_names
from briefs.blocks import unescape_mrkdwn

LOG_FEEDBACK = "log_feedback"


class LogFeedback(Handler):
    """The "Log as field feedback" listener, bound to one engine and settings."""

    def ack_now(self, ack: Ack) -> None:
        ack()

    def open_feedback_form(self, body: dict[str, Any], client: WebClient) -> None:
        """Open the feedback form prefilled with the message's text."""
        message = body.get("message") or {}
        view = feedback_modal(
            segments=active_segment_names(self.engine),
            text=unescape_mrkdwn(message.get("text") or ""),
            metadata={
                "channel": (body.get("channel") or {}).get("id"),
                "ts": message.get("ts") or body.get("message_ts"),
            },
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)
