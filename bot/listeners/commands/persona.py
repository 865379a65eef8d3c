"""``/persona <segment> [brief|talking-points|discovery]``: a persona brief, as blocks,
with what changed since the person asking last read it."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, Respond

from bot.listeners.commands.words import split_words
from bot.listeners.handler import Handler
from bot.listeners.messages import problem
from briefs.blocks import escape_mrkdwn as esc
from briefs.render import BriefError, brief_kind
from commands.persona import render_brief
from segments.errors import SegopsError

PERSONA_USAGE = "usage: `/persona <segment> [brief|talking-points|discovery]`"


def persona_usage_error(text: str | None) -> str | None:
    """The usage error for ``/persona`` text, or None when it can run."""
    name, kind = split_words(text)
    if not name:
        return PERSONA_USAGE
    try:
        brief_kind(kind)
    except BriefError:
        return f"unknown brief `{esc(kind)}`. {PERSONA_USAGE}"
    return None


class PersonaCommand(Handler):
    """The ``/persona`` listener, bound to one engine and settings."""

    def ack(self, ack: Ack, command: dict[str, Any]) -> None:
        error = persona_usage_error(command.get("text"))
        if error:
            ack(text=error)
        else:
            ack()

    def run(self, command: dict[str, Any], respond: Respond) -> None:
        if persona_usage_error(command.get("text")):
            return
        name, kind = split_words(command.get("text"))
        try:
            result = render_brief(
                self.engine,
                name,
                kind=brief_kind(kind),
                settings=self.settings,
                viewer=command.get("user_id"),
            )
        except SegopsError as error:
            respond(text=problem(error))
            return
        for message in result["messages"]:
            respond(text=message["text"], blocks=message["blocks"])
