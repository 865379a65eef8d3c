"""``proposal_approve`` / ``proposal_reject``: decide a proposal with its buttons.

Decided once in the database. The click that wins updates the proposal's message
(buttons gone); a double click, a retried delivery or a reaction that got there first
is a quiet no-op for the one who decided, and others are told privately who did. A
stale proposal is marked so in its message and the clicker is told why. A click from
App Home also refreshes that Home tab.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.listeners.actions.payload import from_home, message_location, note, number
from bot.listeners.handler import Handler
from bot.listeners.home.app_home_opened import Home
from bot.listeners.messages import problem, update_proposal_message
from bot.listeners.workspace import classifying_workspace
from commands import proposals
from commands.errors import AlreadyDecided, StaleProposal
from segments.errors import SegopsError

PROPOSAL_ACTIONS = ("proposal_approve", "proposal_reject")


class ProposalDecision(Handler):
    """The approve / reject button listener, bound to one engine and settings."""

    def run(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Approve or reject the proposal named by the button's value, then update the message."""
        channel, ts = message_location(body)
        user = body["user"]["id"]
        proposal_id = number(action)
        if proposal_id is None:
            note(body, respond, client, ":warning: this button does not name a proposal")
            return
        try:
            decision = proposals.decide(
                self.engine,
                proposal_id=proposal_id,
                user=user,
                approve=action["action_id"] == "proposal_approve",
                via="button",
                budget=self.settings.write_budget,
                ws=classifying_workspace(self.settings),
            )
        except AlreadyDecided as error:
            # The decision that won updated the message; a repeat by its author stays quiet.
            if error.decision.decided_by != user:  # type: ignore[attr-defined]
                note(body, respond, client, problem(error))
            self._refresh_home(body, client, user)
            return
        except StaleProposal as error:
            update_proposal_message(
                client,
                self.engine,
                self.settings,
                error.decision,  # type: ignore[attr-defined]
                channel=channel,
                ts=ts,
            )
            note(body, respond, client, problem(error))
            self._refresh_home(body, client, user)
            return
        except SegopsError as error:
            note(body, respond, client, problem(error))
            return
        update_proposal_message(
            client, self.engine, self.settings, decision, channel=channel, ts=ts
        )
        self._refresh_home(body, client, user)

    def _refresh_home(self, body: dict[str, Any], client: WebClient, user: str) -> None:
        """Re-publish the Home tab the click came from, so decided proposals leave it."""
        if not from_home(body):
            return
        client.views_publish(user_id=user, view=Home(self.engine, self.settings).home_view(user))
