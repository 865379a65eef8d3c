"""App Home: ``app_home_opened`` publishes the user's Home tab (:mod:`.app_home_opened`)."""

from __future__ import annotations

from slack_bolt import App
from sqlalchemy import Engine

from bot.listeners.home.app_home_opened import Home
from commands.settings import Settings

EVENTS = ("app_home_opened",)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire ``app_home_opened``."""
    handlers = Home(engine, settings)
    app.event("app_home_opened")(ack=handlers.ack_now, lazy=[handlers.home_opened])
