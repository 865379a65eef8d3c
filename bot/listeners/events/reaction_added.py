"""``reaction_added``: approving or rejecting a proposal with an emoji reaction.

An owner's approve/reject emoji on a proposal message decides it, like the buttons;
the listener marks its event processed once that is done (see :mod:`bot.dedupe`).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.dedupe import mark_processed
from bot.listeners.handler import Handler
from bot.listeners.messages import problem, tell, update_proposal_message
from bot.listeners.workspace import classifying_workspace
from commands import proposals
from commands.errors import AlreadyDecided, StaleProposal
from segments.errors import SegopsError


def emoji_name(reaction: str) -> str:
    """The emoji without a skin-tone modifier (``+1::skin-tone-2`` -> ``+1``)."""
    return reaction.split("::", 1)[0]


class ReactionAdded(Handler):
    """The ``reaction_added`` listener, bound to one engine and settings."""

    def ack_now(self, ack: Ack) -> None:
        ack()

    def run(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
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
                budget=self.settings.write_budget,
                ws=classifying_workspace(self.settings),
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
