"""What every listener class shares: the engine and settings it is bound to."""

from __future__ import annotations

from sqlalchemy import Engine

from commands.settings import Settings


class Handler:
    """A listener bound to one engine and settings; its methods are the bolt callbacks."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
