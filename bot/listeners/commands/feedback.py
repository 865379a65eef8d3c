"""``/feedback <segment> <what you heard>`` logs feedback; ``/feedback`` alone opens a form."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.listeners.commands.words import split_words
from bot.listeners.handler import Handler
from bot.listeners.messages import feedback_saved, problem
from bot.listeners.views.modals import feedback_modal
from bot.listeners.workspace import active_segment_names
from commands.feedback import add_feedback
from segments.errors import SegopsError

FEEDBACK_USAGE = "usage: `/feedback <segment> <what you heard>` (or `/feedback` alone for a form)"


def feedback_usage_error(text: str | None) -> str | None:
    """The usage error for ``/feedback`` text, or None when it can run."""
    name, note = split_words(text)
    if name and not note:
        return FEEDBACK_USAGE
    return None


class FeedbackCommand(Handler):
    """The ``/feedback`` listener, bound to one engine and settings."""

    def ack(self, ack: Ack, command: dict[str, Any]) -> None:
        error = feedback_usage_error(command.get("text"))
        if error:
            ack(text=error)
        else:
            ack()

    def run(self, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if feedback_usage_error(command.get("text")):
            return
        name, note = split_words(command.get("text"))
        if not name:
            view = feedback_modal(
                segments=active_segment_names(self.engine),
                metadata={"channel": command.get("channel_id")},
            )
            client.views_open(trigger_id=command["trigger_id"], view=view)
            return
        try:
            saved = add_feedback(
                self.engine,
                segment=name,
                author=command["user_id"],
                text=note,
                origin="slack",
                budget=self.settings.write_budget,
            )
        except SegopsError as error:
            respond(text=problem(error))
            return
        respond(text=feedback_saved(saved.id, saved.segment, saved.text))
