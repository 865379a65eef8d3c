"""App Home: the segments a user owns, with their health, and proposals awaiting them."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.dedupe import mark_processed
from bot.listeners import proposal_messages
from briefs.render import render_blocks
from commands import catalog, proposals
from commands.settings import Settings

logger = logging.getLogger(__name__)

EVENTS = ("app_home_opened",)
HOME_BLOCKS_MAX = 100
PROPOSALS_SHOWN = 3


class Home:
    """The App Home listener, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def ack_now(self, ack: Ack) -> None:
        ack()

    def home_opened(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            user = event["user"]
            client.views_publish(user_id=user, view=self.home_view(user))
        mark_processed(self.engine, body["event_id"])

    def home_view(self, user: str) -> dict[str, Any]:
        """The Home tab of ``user``: their segments (or the catalog) and pending decisions."""
        rows = []
        for summary in catalog.list_segments(self.engine):
            row = {"channel": None, "open_alerts": 0, **summary.to_dict()}
            size = row.get("size")
            if size is not None and size < self.settings.privacy_floor:
                row["size"] = None
            rows.append(row)
        mine = [r for r in rows if r["owner"] == user]
        ctx = {"segments": mine, "heading": "Your segments"} if mine else {"segments": rows}
        blocks = render_blocks("catalog", ctx, templates_dir=self.settings.templates_dir)
        for pending in proposals.pending_for(self.engine, user)[:PROPOSALS_SHOWN]:
            blocks.append({"type": "divider"})
            for message in proposal_messages(self.engine, self.settings, pending.id):
                blocks.extend(message["blocks"])
        return {"type": "home", "blocks": blocks[:HOME_BLOCKS_MAX]}


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire ``app_home_opened``."""
    handlers = Home(engine, settings)
    app.event("app_home_opened")(ack=handlers.ack_now, lazy=[handlers.home_opened])
