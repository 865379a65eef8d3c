"""Slack listeners, one package per surface, each with ``register(app, engine=, settings=)``.

Every listener acks at once (usage errors go in the ack) and does its work in a
lazy function that calls one ``commands`` use case; a user-facing
``SegopsError`` becomes a short reply to that user, anything else reaches bolt's
error handler. Each surface package holds one module per handler and only wires
them in its ``register``; the replies and messages they share are in
:mod:`bot.listeners.messages`, the modal builders in :mod:`bot.listeners.views.modals`.
"""

from __future__ import annotations

from slack_bolt import App
from sqlalchemy import Engine

from bot.listeners import actions, commands, events, home, shortcuts, views
from commands.settings import Settings


def register_listeners(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire every surface: slash commands, actions, events, views, shortcuts, App Home."""
    for surface in (commands, actions, events, views, shortcuts, home):
        surface.register(app, engine=engine, settings=settings)
