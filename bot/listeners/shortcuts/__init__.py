"""Shortcuts: the message shortcut "Log as field feedback"."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.listeners.views.modals import feedback_modal
from briefs.blocks import unescape_mrkdwn
from commands import catalog
from commands.settings import Settings

LOG_FEEDBACK = "log_feedback"
SHORTCUTS = (LOG_FEEDBACK,)


class Shortcuts:
    """The shortcut listeners, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def ack_now(self, ack: Ack) -> None:
        ack()

    def open_feedback_form(self, body: dict[str, Any], client: WebClient) -> None:
        """Open the feedback form prefilled with the message's text."""
        message = body.get("message") or {}
        segments = [s.name for s in catalog.list_segments(self.engine) if s.status == "active"]
        view = feedback_modal(
            segments=segments,
            text=unescape_mrkdwn(message.get("text") or ""),
            metadata={
                "channel": (body.get("channel") or {}).get("id"),
                "ts": message.get("ts") or body.get("message_ts"),
            },
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the message shortcut."""
    handlers = Shortcuts(engine, settings)
    app.shortcut(LOG_FEEDBACK)(ack=handlers.ack_now, lazy=[handlers.open_feedback_form])
