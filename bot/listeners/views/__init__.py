"""Modal submissions: field feedback and change proposals.

Both ack at once (closing the modal) and save in a lazy function; the outcome, or
the problem, reaches the user as an ephemeral message in the channel the form was
opened from, or as a DM.
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
from commands.feedback import add_feedback
from commands.settings import Settings
from segments.errors import SegopsError

logger = logging.getLogger(__name__)

VIEWS = (FEEDBACK_CALLBACK, PROPOSAL_CALLBACK)


class Views:
    """The view-submission listeners, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def ack_now(self, ack: Ack) -> None:
        ack()

    def save_feedback(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        values, context = submitted(view), metadata(view)
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


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the feedback and proposal form submissions."""
    handlers = Views(engine, settings)
    app.view(FEEDBACK_CALLBACK)(ack=handlers.ack_now, lazy=[handlers.save_feedback])
    app.view(PROPOSAL_CALLBACK)(ack=handlers.ack_now, lazy=[handlers.save_proposal])
