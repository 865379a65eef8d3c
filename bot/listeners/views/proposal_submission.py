"""``propose_submit``: the change-proposal form.

The ack answers a proposal without a reason, or a rename without a name, as field
errors, so the form stays open. A valid submission closes the modal; the proposal is
made and posted in a lazy function, and the user told where (or what went wrong) as
an ephemeral message in the channel the form was opened from, or as a DM. The impact
is measured by the worker, which answers by DM when it is done (a form has no
``response_url``) and updates the proposal's message.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.listeners.commands.segment import proposal_posted
from bot.listeners.handler import Handler
from bot.listeners.messages import post_proposal, problem, tell
from bot.listeners.views.modals import metadata, proposal_changes, submitted
from bot.listeners.workspace import load_workspace_of
from commands import catalog, proposals
from commands.queue import ReplyTo
from segments.errors import SegopsError


def proposal_errors(values: dict[str, str | None]) -> dict[str, str]:
    """Field errors of a proposal form, by block id (empty when it can be proposed)."""
    errors: dict[str, str] = {}
    if not values.get("reason"):
        errors["reason"] = "Say why: owners decide on the reason and the impact."
    if values.get("kind") == "rename" and not values.get("name"):
        errors["name"] = "A rename needs the new name."
    return errors


class ProposalSubmission(Handler):
    """The proposal-form listener, bound to one engine and settings."""

    def ack(self, ack: Ack, view: dict[str, Any]) -> None:
        errors = proposal_errors(submitted(view))
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()

    def run(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        values, context = submitted(view), metadata(view)
        if proposal_errors(values):
            return  # answered with field errors in the ack; the form is still open
        user, channel = body["user"]["id"], context.get("channel")
        kind = values.get("kind") or "edit"
        try:
            current = catalog.show_segment(
                self.engine,
                context.get("segment") or "",
                privacy_floor=self.settings.privacy_floor,
            )["definition"]
            proposal = proposals.propose(
                self.engine,
                load_workspace_of(self.settings),
                segment=current["name"],
                proposer=user,
                kind=kind,
                changes=proposal_changes(kind, values, current),
                reason=values.get("reason") or "",
                queue_impact=ReplyTo(user=user, channel=channel),
            )
            posted_in, _ts = post_proposal(
                client, self.engine, self.settings, proposal, fallback_channel=channel
            )
        except SegopsError as error:
            tell(client, user, channel, problem(error))
            return
        tell(client, user, channel, proposal_posted(proposal, posted_in))
