"""Shortcuts: the message shortcut "Log as field feedback" (:mod:`.log_feedback`)."""

from __future__ import annotations

from slack_bolt import App
from sqlalchemy import Engine

from bot.listeners.shortcuts.log_feedback import LOG_FEEDBACK, LogFeedback
from commands.settings import Settings

SHORTCUTS = (LOG_FEEDBACK,)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the message shortcut."""
    handlers = LogFeedback(engine, settings)
    app.shortcut(LOG_FEEDBACK)(ack=handlers.ack_now, lazy=[handlers.open_feedback_form])
