"""Slash commands: ``/segment``, ``/persona`` and ``/feedback``, one module each.

Each command acks at once (usage errors go in the ack) and answers through its
``response_url`` from a lazy function, so slow work (a refresh) never delays the ack.
"""

from __future__ import annotations

from slack_bolt import App
from sqlalchemy import Engine

from bot.listeners.commands.feedback import FeedbackCommand
from bot.listeners.commands.persona import PersonaCommand
from bot.listeners.commands.segment import SegmentCommand
from commands.settings import Settings

COMMANDS = ("/segment", "/persona", "/feedback")


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire ``/segment``, ``/persona`` and ``/feedback``."""
    segment = SegmentCommand(engine, settings)
    persona = PersonaCommand(engine, settings)
    feedback = FeedbackCommand(engine, settings)
    app.command("/segment")(ack=segment.ack, lazy=[segment.run])
    app.command("/persona")(ack=persona.ack, lazy=[persona.run])
    app.command("/feedback")(ack=feedback.ack, lazy=[feedback.run])
