"""``feedback_submit``: the field-feedback form.

The ack answers an empty or too long observation, or an unknown or archived segment,
as field errors (``response_action: errors``), so the form stays open and nothing is
written. A valid submission closes the modal and is saved in a lazy function; the
outcome reaches the user as an ephemeral message in the channel the form was opened
from, or as a DM.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.listeners.handler import Handler
from bot.listeners.messages import feedback_saved, problem, tell
from bot.listeners.views.modals import metadata, submitted
from commands import catalog
from commands.feedback import MAX_FIELD, MAX_TEXT, add_feedback
from segments.errors import SegopsError

logger = logging.getLogger(__name__)


class FeedbackSubmission(Handler):
    """The feedback-form listener, bound to one engine and settings."""

    def ack(self, ack: Ack, view: dict[str, Any]) -> None:
        errors = self.feedback_errors(submitted(view))
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
            shown = catalog.show_segment(
                self.engine, name, privacy_floor=self.settings.privacy_floor
            )
        except SegopsError as error:
            errors["segment"] = str(error)
        else:
            if shown["status"] == "archived":
                errors["segment"] = f"Segment '{shown['name']}' is archived: feedback is closed."
        return errors

    def run(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
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
                budget=self.settings.write_budget,
            )
        except SegopsError as error:
            tell(client, user, channel, problem(error))
            return
        tell(client, user, channel, feedback_saved(saved.id, saved.segment, saved.text))
