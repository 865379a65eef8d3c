"""``agenda_approve_N`` / ``agenda_reject_N`` / ``agenda_ack_N``: act from the clinic agenda.

Each action id ends in the id it acts on, because Slack wants action ids unique within
a block and the agenda puts several in one. The same use cases as the proposal and
alert buttons, but the agenda post is left as it is: a decided proposal's own message is
updated (when it was posted), and the clicker gets a private note saying what happened.
``agenda_propose_N`` is served by the drift alert's "Open proposal" listener, which only
opens a form.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.listeners.actions.payload import note, number
from bot.listeners.handler import Handler
from bot.listeners.messages import problem, update_proposal_message
from bot.listeners.workspace import classifying_workspace
from commands import alerts, proposals
from commands.errors import StaleProposal
from segments.errors import SegopsError

AGENDA_ACTION = re.compile(r"^agenda_(approve|reject|ack)_\d+$")
AGENDA_PROPOSE = re.compile(r"^agenda_propose_\d+$")


class AgendaAction(Handler):
    """The agenda's buttons, bound to one engine and settings."""

    def run(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        item = number(action)
        if item is None:
            note(body, respond, client, ":warning: this button does not name anything")
            return
        user = body["user"]["id"]
        try:
            verb = action["action_id"].split("_")[1]
            if verb == "ack":
                alert = alerts.acknowledge(self.engine, alert_id=item, user=user)
                text = (
                    f":white_check_mark: alert #{item} on `{alert.segment}` acknowledged"
                    if alert.changed
                    else f"alert #{item} on `{alert.segment}` was already acknowledged"
                )
            else:
                decision = proposals.decide(
                    self.engine,
                    proposal_id=item,
                    user=user,
                    approve=verb == "approve",
                    via="button",
                    ws=classifying_workspace(self.settings),
                )
                update_proposal_message(client, self.engine, self.settings, decision)
                text = f"proposal #{item} on `{decision.segment}` {decision.status}"
        except StaleProposal as error:
            update_proposal_message(client, self.engine, self.settings, error.decision)  # type: ignore[attr-defined]
            note(body, respond, client, problem(error))
            return
        except SegopsError as error:
            note(body, respond, client, problem(error))
            return
        note(body, respond, client, text)
