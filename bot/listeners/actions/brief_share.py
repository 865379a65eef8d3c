"""``persona_share``: post the brief the user is looking at to the channel.

``chat.postMessage`` without the share button; later parts go in the first one's thread.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.listeners.actions.payload import message_location, note
from bot.listeners.handler import Handler
from bot.listeners.messages import problem
from briefs.render import PERSONA_KINDS, render_messages
from commands.persona import brief_context
from commands.policy import SHARED_REFUSAL, shared_outside
from segments.errors import SegopsError

logger = logging.getLogger(__name__)


class BriefShare(Handler):
    """The "Post to channel" button listener, bound to one engine and settings."""

    def run(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Post the brief the user is looking at to the channel, without the share button."""
        channel, _ts = message_location(body)
        name, _, kind = (action.get("value") or "").partition("|")
        kind = kind or "brief"
        if kind not in PERSONA_KINDS:
            note(body, respond, client, f":warning: unknown brief {kind!r}")
            return
        if not channel:
            note(body, respond, client, ":warning: open the brief in a channel to share it.")
            return
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except SlackApiError as error:
            code = error.response.get("error")
            logger.info("brief_share_unchecked channel=%s error=%s", channel, code)
            note(
                body,
                respond,
                client,
                f":warning: I could not check whether this channel is shared ({code}): "
                "invite me to it and try again.",
            )
            return
        if shared_outside(info):
            note(body, respond, client, SHARED_REFUSAL)
            return
        try:
            ctx = {**brief_context(self.engine, name, settings=self.settings), "share": False}
            messages = render_messages(kind, ctx, templates_dir=self.settings.templates_dir)
        except SegopsError as error:
            note(body, respond, client, problem(error))
            return
        try:
            first = client.chat_postMessage(
                channel=channel, text=messages[0]["text"], blocks=messages[0]["blocks"]
            )
            for message in messages[1:]:
                client.chat_postMessage(
                    channel=first["channel"],
                    thread_ts=first["ts"],
                    text=message["text"],
                    blocks=message["blocks"],
                )
        except SlackApiError as error:
            code = error.response.get("error")
            logger.info("brief_share_failed channel=%s error=%s", channel, code)
            note(
                body,
                respond,
                client,
                f":warning: I could not post in this channel ({code}): "
                "invite me to it and try again.",
            )
