"""Events API: approving or rejecting a proposal with an emoji reaction.

Event deliveries are de-duplicated by :mod:`bot.dedupe` before they get here; each
listener marks its event processed once its work is done, so a retried delivery of
a finished event is ignored and one whose first delivery failed runs again.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.dedupe import mark_processed
from bot.listeners import problem, tell, update_proposal_message
from commands import proposals
from commands.errors import AlreadyDecided, StaleProposal
from commands.settings import Settings
from segments.errors import SegopsError

logger = logging.getLogger(__name__)

EVENTS = ("reaction_added",)


def emoji_name(reaction: str) -> str:
    """The emoji without a skin-tone modifier (``+1::skin-tone-2`` -> ``+1``)."""
    return reaction.split("::", 1)[0]


class Events:
    """The event listeners, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def ack_now(self, ack: Ack) -> None:
        ack()

    def reaction_added(
        self, body: dict[str, Any], event: dict[str, Any], client: WebClient
    ) -> None:
        """An owner's approve/reject emoji on a proposal message decides it."""
        self._decide_by_reaction(event, client)
        mark_processed(self.engine, body["event_id"])

    def _decide_by_reaction(self, event: dict[str, Any], client: WebClient) -> None:
        emoji = emoji_name(event.get("reaction", ""))
        if emoji not in (self.settings.approve_emoji, self.settings.reject_emoji):
            return
        item = event.get("item") or {}
        channel, ts = item.get("channel"), item.get("ts")
        if item.get("type") != "message" or not channel or not ts:
            return
        proposal_id = proposals.find_by_message(self.engine, channel, ts)
        if proposal_id is None:
            return
        user = event["user"]
        try:
            decision = proposals.decide(
                self.engine,
                proposal_id=proposal_id,
                user=user,
                approve=emoji == self.settings.approve_emoji,
                via="reaction",
            )
        except AlreadyDecided:
            return
        except StaleProposal as error:
            update_proposal_message(client, self.engine, self.settings, error.decision)  # type: ignore[attr-defined]
            tell(client, user, channel, problem(error))
            return
        except SegopsError as error:
            tell(client, user, channel, problem(error))
            return
        update_proposal_message(client, self.engine, self.settings, decision)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire ``reaction_added``."""
    handlers = Events(engine, settings)
    app.event("reaction_added")(ack=handlers.ack_now, lazy=[handlers.reaction_added])
