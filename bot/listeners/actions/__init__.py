"""Button clicks: proposal decisions, sharing a brief, and drift-alert buttons.

Action ids are the ones the ``briefs`` templates put on their buttons. Every click is
acked at once; the work runs in a lazy function.

* ``proposal_approve`` / ``proposal_reject``: decided once in the database. The click
  that wins updates the proposal's message (buttons gone); a double click, a retried
  delivery or a reaction that got there first is a quiet no-op for the one who decided,
  and others are told privately who did. A stale proposal is marked so in its message
  and the clicker is told why. A click from App Home also refreshes that Home tab.
* ``persona_share``: posts the brief the user is looking at to the channel
  (``chat.postMessage``; later parts in the first one's thread).
* ``alert_ack`` / ``alert_mute``: :mod:`commands.alerts`; the alert message is updated
  in place to show who acknowledged it, or until when it is muted. Others get a
  private "not authorised"; a repeated click is a quiet no-op.
* ``alert_propose``: opens the change-proposal form for the alert's segment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine

from bot.listeners import problem, tell, update_alert_message, update_proposal_message
from bot.listeners.home import Home
from bot.listeners.views.modals import proposal_modal
from briefs.render import PERSONA_KINDS, render_messages
from commands import alerts, catalog, proposals
from commands.errors import AlreadyDecided, StaleProposal
from commands.persona import brief_context
from commands.settings import Settings
from segments.errors import SegopsError

logger = logging.getLogger(__name__)

PROPOSAL_ACTIONS = ("proposal_approve", "proposal_reject")
ALERT_ACTIONS = ("alert_ack", "alert_propose", "alert_mute")
ACTIONS = (*PROPOSAL_ACTIONS, "persona_share", *ALERT_ACTIONS)


def _message_location(body: dict[str, Any]) -> tuple[str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return channel, container.get("message_ts") or (body.get("message") or {}).get("ts")


def _number(action: dict[str, Any]) -> int | None:
    """The id a button's value names, or None when it names none."""
    value = str(action.get("value") or "").strip()
    return int(value) if value.isdigit() else None


def _from_home(body: dict[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"


class Actions:
    """The block-action listeners, bound to one engine and settings."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def ack_now(self, ack: Ack) -> None:
        ack()

    def _note(self, body: dict[str, Any], respond: Respond, client: WebClient, text: str) -> None:
        """A private note to whoever clicked: through ``response_url``, else (App Home) a DM."""
        if body.get("response_url"):
            respond(text=text, replace_original=False)
        else:
            tell(client, body["user"]["id"], None, text)

    # proposals -----------------------------------------------------------------------------

    def decide(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Approve or reject the proposal named by the button's value, then update the message."""
        channel, ts = _message_location(body)
        user = body["user"]["id"]
        proposal_id = _number(action)
        if proposal_id is None:
            self._note(body, respond, client, ":warning: this button does not name a proposal")
            return
        try:
            decision = proposals.decide(
                self.engine,
                proposal_id=proposal_id,
                user=user,
                approve=action["action_id"] == "proposal_approve",
                via="button",
            )
        except AlreadyDecided as error:
            # The decision that won updated the message; a repeat by its author stays quiet.
            if error.decision.decided_by != user:  # type: ignore[attr-defined]
                self._note(body, respond, client, problem(error))
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
            self._note(body, respond, client, problem(error))
            self._refresh_home(body, client, user)
            return
        except SegopsError as error:
            self._note(body, respond, client, problem(error))
            return
        update_proposal_message(
            client, self.engine, self.settings, decision, channel=channel, ts=ts
        )
        self._refresh_home(body, client, user)

    def _refresh_home(self, body: dict[str, Any], client: WebClient, user: str) -> None:
        """Re-publish the Home tab the click came from, so decided proposals leave it."""
        if not _from_home(body):
            return
        client.views_publish(user_id=user, view=Home(self.engine, self.settings).home_view(user))

    # briefs ----------------------------------------------------------------------------------

    def share_brief(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Post the brief the user is looking at to the channel, without the share button."""
        channel, _ts = _message_location(body)
        name, _, kind = (action.get("value") or "").partition("|")
        kind = kind or "brief"
        if kind not in PERSONA_KINDS:
            self._note(body, respond, client, f":warning: unknown brief {kind!r}")
            return
        if not channel:
            self._note(body, respond, client, ":warning: open the brief in a channel to share it.")
            return
        try:
            ctx = {**brief_context(self.engine, name, settings=self.settings), "share": False}
            messages = render_messages(kind, ctx, templates_dir=self.settings.templates_dir)
        except SegopsError as error:
            self._note(body, respond, client, problem(error))
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
            self._note(
                body,
                respond,
                client,
                f":warning: I could not post in this channel ({code}): "
                "invite me to it and try again.",
            )

    # drift alerts ----------------------------------------------------------------------------

    def acknowledge_alert(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """The owner or an approver acknowledges the alert; the message shows who did."""
        self._alert(body, action, respond, client, alerts.acknowledge)

    def mute_alert(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """The owner mutes the alert for a week; the message shows until when."""
        self._alert(body, action, respond, client, alerts.mute)

    def _alert(
        self,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
        use_case: Callable[..., alerts.AlertView],
    ) -> None:
        channel, ts = _message_location(body)
        alert_id = _number(action)
        if alert_id is None:
            self._note(body, respond, client, ":warning: this button does not name an alert")
            return
        try:
            alert = use_case(self.engine, alert_id=alert_id, user=body["user"]["id"])
        except SegopsError as error:
            self._note(body, respond, client, problem(error))
            return
        if alert.changed and channel and ts:
            update_alert_message(client, self.engine, self.settings, alert, channel=channel, ts=ts)

    def propose_from_alert(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Open the change-proposal form for the alert's segment, the alert as the reason."""
        channel, _ts = _message_location(body)
        alert_id = _number(action)
        if alert_id is None:
            self._note(body, respond, client, ":warning: this button does not name an alert")
            return
        try:
            ctx = alerts.alert_context(self.engine, alert_id)
            shown = catalog.show_segment(self.engine, ctx["segment"]["name"])
        except SegopsError as error:
            self._note(body, respond, client, problem(error))
            return
        clicked = next((a for a in ctx["alerts"] if a["id"] == alert_id), None)
        reason = f"Drift alert of {ctx['as_of']}: {clicked['message']}" if clicked else ""
        modal = proposal_modal(
            segment=shown["definition"],
            metadata={"segment": shown["name"], "channel": channel},
            reason=reason,
        )
        client.views_open(trigger_id=body["trigger_id"], view=modal)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the proposal, brief and alert buttons."""
    handlers = Actions(engine, settings)
    for action_id in PROPOSAL_ACTIONS:
        app.action(action_id)(ack=handlers.ack_now, lazy=[handlers.decide])
    app.action("persona_share")(ack=handlers.ack_now, lazy=[handlers.share_brief])
    app.action("alert_ack")(ack=handlers.ack_now, lazy=[handlers.acknowledge_alert])
    app.action("alert_mute")(ack=handlers.ack_now, lazy=[handlers.mute_alert])
    app.action("alert_propose")(ack=handlers.ack_now, lazy=[handlers.propose_from_alert])
