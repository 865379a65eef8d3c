"""Events API: approving or rejecting a proposal with an emoji reaction.

Event deliveries are de-duplicated by :mod:`bot.dedupe` before they get here; each
listener marks its event processed once its work is done, so a retried delivery of
a finished event is ignored and one whose first delivery failed runs again. App Home
(``app_home_opened``) is wired by :mod:`bot.listeners.home`.
"""

from __future__ import annotations

from slack_bolt import App
from sqlalchemy import Engine

from bot.listeners.events.reaction_added import ReactionAdded
from commands.settings import Settings

EVENTS = ("reaction_added",)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire ``reaction_added``."""
    handlers = ReactionAdded(engine, settings)
    app.event("reaction_added")(ack=handlers.ack_now, lazy=[handlers.run])
