"""Button clicks: proposal decisions, sharing a brief, and drift-alert buttons.

Action ids are the ones the ``briefs`` templates put on their buttons.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.listeners import problem, update_proposal_message
from briefs.render import render_messages
from commands import proposals
from commands.errors import AlreadyDecided, StaleProposal
from commands.persona import brief_context
from commands.settings import Settings
from segments.errors import SegopsError

logger = logging.getLogger(__name__)

PROPOSAL_ACTIONS = ("proposal_approve", "proposal_reject")
ALERT_ACTIONS = ("alert_ack", "alert_propose", "alert_mute")
ACTIONS = (*PROPOSAL_ACTIONS, "persona_share", *ALERT_ACTIONS)
ALERT_BUTTONS_UNAVAILABLE = (
    "This alert button has no action in this version of segops: "
    "alerts are acknowledged and muted from the CLI for now."
)


def _message_location(body: dict[str, Any]) -> tuple[str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return channel, container.get("message_ts") or (body.get("message") or {}).get("ts")


class Actions:
    """The block-action listeners, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def ack_now(self, ack: Ack) -> None:
        ack()

    def decide(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Approve or reject the proposal named by the button's value, then update the message."""
        channel, ts = _message_location(body)
        user = body["user"]["id"]
        try:
            proposal_id = int(action.get("value") or "")
        except ValueError:
            respond(text=":warning: this button does not name a proposal", replace_original=False)
            return
        try:
            decision = proposals.decide(
                self.engine,
                proposal_id=proposal_id,
                user=user,
                approve=action["action_id"] == "proposal_approve",
                via="button",
            )
        except (AlreadyDecided, StaleProposal) as error:
            decision = error.decision  # type: ignore[attr-defined]
            update_proposal_message(
                client, self.engine, self.settings, decision, channel=channel, ts=ts
            )
            if isinstance(error, StaleProposal):
                respond(text=problem(error), replace_original=False)
            return
        except SegopsError as error:
            respond(text=problem(error), replace_original=False)
            return
        update_proposal_message(
            client, self.engine, self.settings, decision, channel=channel, ts=ts
        )

    def share_brief(self, action: dict[str, Any], respond: Respond) -> None:
        """Post the brief the user is looking at to the channel, without the share button."""
        name, _, kind = (action.get("value") or "").partition("|")
        try:
            ctx = {**brief_context(self.engine, name, settings=self.settings), "share": False}
            messages = render_messages(
                kind or "brief", ctx, templates_dir=self.settings.templates_dir
            )
        except SegopsError as error:
            respond(text=problem(error), replace_original=False)
            return
        for message in messages:
            respond(
                text=message["text"],
                blocks=message["blocks"],
                response_type="in_channel",
                replace_original=False,
            )

    def alert_button(self, respond: Respond) -> None:
        respond(text=ALERT_BUTTONS_UNAVAILABLE, replace_original=False)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the proposal, brief and alert buttons."""
    handlers = Actions(engine, settings)
    for action_id in PROPOSAL_ACTIONS:
        app.action(action_id)(ack=handlers.ack_now, lazy=[handlers.decide])
    app.action("persona_share")(ack=handlers.ack_now, lazy=[handlers.share_brief])
    for action_id in ALERT_ACTIONS:
        app.action(action_id)(ack=handlers.ack_now, lazy=[handlers.alert_button])
