"""Modal submissions: field feedback and change proposals.

The ack checks what can be checked at once and answers a problem as a field error
(``response_action: errors``), so the form stays open for the user to fix it and
nothing is written: an empty or too long observation, an unknown or archived segment;
a proposal without a reason or a rename without a name. A valid submission closes the
modal and is saved in a lazy function; the outcome, or a problem found then, reaches
the user as an ephemeral message in the channel the form was opened from, or as a DM.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine

from bot.listeners import feedback_saved, load_workspace_of, post_proposal, problem, tell
from bot.listeners.views.modals import (
    FEEDBACK_CALLBACK,
    PROPOSAL_CALLBACK,
    metadata,
    proposal_changes,
    submitted,
)
from commands import catalog, proposals
from commands.feedback import MAX_FIELD, MAX_TEXT, add_feedback
from commands.settings import Settings
from segments.errors import SegopsError

logger = logging.getLogger(__name__)

VIEWS = (FEEDBACK_CALLBACK, PROPOSAL_CALLBACK)


class Views:
    """The view-submission listeners, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    # acks: field errors keep the form open ------------------------------------------

    def ack_feedback(self, ack: Ack, view: dict[str, Any]) -> None:
        errors = self.feedback_errors(submitted(view))
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()

    def ack_proposal(self, ack: Ack, view: dict[str, Any]) -> None:
        errors = proposal_errors(submitted(view))
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()

    def feedback_errors(self, values: dict[str, str | None]) -> dict[str, str]:
        """Field errors of a feedback form, by block id (empty when it can be saved)."""
        errors: dict[str, str] = {}
        text = values.get("text") or ""
        if not text:
            errors["text"] = "Say what you heard from the customer."
        elif len(text) > MAX_TEXT:
            errors["text"] = f"At most {MAX_TEXT} characters ({len(text)} now)."
        if len(values.get("reference") or "") > MAX_FIELD:
            errors["reference"] = f"At most {MAX_FIELD} characters."
        name = (values.get("segment") or "").strip().lower()
        if not name:
            errors["segment"] = "Choose a segment."
            return errors
        try:
            shown = catalog.show_segment(self.engine, name)
        except SegopsError as error:
            errors["segment"] = str(error)
        else:
            if shown["status"] == "archived":
                errors["segment"] = f"Segment '{shown['name']}' is archived: feedback is closed."
        return errors

    # work ------------------------------------------------------------------------------

    def save_feedback(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        values, context = submitted(view), metadata(view)
        if self.feedback_errors(values):
            return  # answered with field errors in the ack; the form is still open
        user, channel = body["user"]["id"], context.get("channel")
        permalink = None
        if channel and context.get("ts"):
            try:
                permalink = client.chat_getPermalink(channel=channel, message_ts=context["ts"]).get(
                    "permalink"
                )
            except SlackApiError as error:
                logger.info("permalink_failed error=%s", error.response.get("error"))
        try:
            saved = add_feedback(
                self.engine,
                segment=(values.get("segment") or "").lower(),
                author=user,
                text=values.get("text") or "",
                sentiment=values.get("sentiment"),
                importance=values.get("importance"),
                reference=values.get("reference"),
                permalink=permalink,
                origin="slack",
            )
        except SegopsError as error:
            tell(client, user, channel, problem(error))
            return
        tell(client, user, channel, feedback_saved(saved.id, saved.segment, saved.text))

    def save_proposal(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        values, context = submitted(view), metadata(view)
        if proposal_errors(values):
            return  # answered with field errors in the ack; the form is still open
        user, channel = body["user"]["id"], context.get("channel")
        kind = values.get("kind") or "edit"
        try:
            current = catalog.show_segment(self.engine, context.get("segment") or "")["definition"]
            proposal = proposals.propose(
                self.engine,
                load_workspace_of(self.settings),
                segment=current["name"],
                proposer=user,
                kind=kind,
                changes=proposal_changes(kind, values, current),
                reason=values.get("reason") or "",
            )
            posted_in, _ts = post_proposal(
                client, self.engine, self.settings, proposal, fallback_channel=channel
            )
        except SegopsError as error:
            tell(client, user, channel, problem(error))
            return
        tell(
            client,
            user,
            channel,
            f":ballot_box_with_ballot: Proposal #{proposal.id} posted in <#{posted_in}>.",
        )


def proposal_errors(values: dict[str, str | None]) -> dict[str, str]:
    """Field errors of a proposal form, by block id (empty when it can be proposed)."""
    errors: dict[str, str] = {}
    if not values.get("reason"):
        errors["reason"] = "Say why: owners decide on the reason and the impact."
    if values.get("kind") == "rename" and not values.get("name"):
        errors["name"] = "A rename needs the new name."
    return errors


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the feedback and proposal form submissions."""
    handlers = Views(engine, settings)
    app.view(FEEDBACK_CALLBACK)(ack=handlers.ack_feedback, lazy=[handlers.save_feedback])
    app.view(PROPOSAL_CALLBACK)(ack=handlers.ack_proposal, lazy=[handlers.save_proposal])
