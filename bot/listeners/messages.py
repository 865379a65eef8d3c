"""Replies and messages the listeners share: error text, private notes, proposal and alert posts.

``problem`` turns a user-facing ``SegopsError`` into one line of text; ``tell`` sends a
private note (ephemeral, else a DM); the rest post and update proposal and drift-alert
messages, which the command, view, action and reaction listeners all do.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine

from briefs.blocks import blocks_text, escape_mrkdwn, keep_images
from briefs.render import render_messages
from commands import alerts, proposals
from commands.errors import NotAuthorised
from commands.feedback import FeedbackNotSaved
from commands.settings import Settings
from segments.errors import SegopsError

logger = logging.getLogger(__name__)


def problem(error: SegopsError) -> str:
    """The one-line, user-facing text of an error: escaped, the people it names mentioned."""
    text = escape_mrkdwn(error)
    for user in getattr(error, "users", ()):
        shown = escape_mrkdwn(user)
        text = re.sub(rf"@{re.escape(shown)}\b", lambda _m, u=shown: f"<@{u}>", text)
    if isinstance(error, NotAuthorised):
        return ":no_entry: Not authorised: " + text
    if isinstance(error, FeedbackNotSaved):  # give the person back what they wrote
        quoted = "\n".join(f"> {line}" for line in escape_mrkdwn(error.text).splitlines())
        return f":warning: {text}\nWhat you wrote:\n{quoted}"
    return ":warning: " + text


def feedback_saved(feedback_id: int, segment: str, text: str) -> str:
    """The confirmation shown to whoever logged feedback (the stored, redacted text)."""
    where = escape_mrkdwn(segment)
    return f":memo: Logged feedback #{feedback_id} on `{where}`: {escape_mrkdwn(text)}"


def tell(client: WebClient, user: str, channel: str | None, text: str) -> None:
    """An ephemeral note to ``user`` in ``channel``, or a DM when that is not possible."""
    if channel:
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
            return
        except SlackApiError as error:
            logger.info(
                "ephemeral_failed channel=%s error=%s", channel, error.response.get("error")
            )
    client.chat_postMessage(channel=user, text=text)


def proposal_messages(engine: Engine, settings: Settings, proposal_id: int) -> list[dict[str, Any]]:
    """The proposal rendered as postable messages (buttons while pending)."""
    ctx = proposals.proposal_context(
        engine,
        proposal_id,
        reactions={"approve": settings.approve_emoji, "reject": settings.reject_emoji},
    )
    return render_messages("proposal", ctx, templates_dir=settings.templates_dir)


def post_proposal(
    client: WebClient,
    engine: Engine,
    settings: Settings,
    proposal: proposals.ProposalView,
    *,
    fallback_channel: str | None,
) -> tuple[str, str]:
    """Post a new proposal to its segment's channel (else ``fallback_channel``), remember it.

    Returns (channel id, message ts).
    """
    messages = proposal_messages(engine, settings, proposal.id)
    targets = [c for c in (proposal.segment_channel, fallback_channel) if c]
    if not targets:
        raise SegopsError(f"segment '{proposal.segment}' has no channel to post proposals to")
    for target in targets:
        try:
            first = client.chat_postMessage(
                channel=target, text=messages[0]["text"], blocks=messages[0]["blocks"]
            )
        except SlackApiError as error:
            if target == targets[-1]:
                raise
            logger.warning(
                "proposal_post_failed channel=%s error=%s", target, error.response.get("error")
            )
            continue
        channel, ts = first["channel"], first["ts"]
        for message in messages[1:]:
            client.chat_postMessage(
                channel=channel, thread_ts=ts, text=message["text"], blocks=message["blocks"]
            )
        proposals.set_message(engine, proposal.id, channel, ts)
        if proposal.impact_pending:
            # The worker may have measured it before the message was known: show it now.
            if not proposals.get_proposal(engine, proposal.id).impact_pending:
                refresh_proposal_message(client, engine, settings, proposal.id)
        return channel, ts
    raise AssertionError("unreachable")


def refresh_proposal_message(
    client: WebClient, engine: Engine, settings: Settings, proposal_id: int
) -> bool:
    """Re-render a posted proposal's message in place (its impact arrived); whether it was."""
    view = proposals.get_proposal(engine, proposal_id)
    if not view.channel or not view.message_ts:
        return False
    message = proposal_messages(engine, settings, proposal_id)[0]
    client.chat_update(
        channel=view.channel, ts=view.message_ts, text=message["text"], blocks=message["blocks"]
    )
    return True


def update_proposal_message(
    client: WebClient,
    engine: Engine,
    settings: Settings,
    decision: proposals.DecisionView,
    *,
    channel: str | None = None,
    ts: str | None = None,
) -> None:
    """Show the decision in the proposal's message, without buttons."""
    channel, ts = decision.channel or channel, decision.message_ts or ts
    if not channel or not ts:
        return
    message = proposal_messages(engine, settings, decision.proposal_id)[0]
    client.chat_update(channel=channel, ts=ts, text=message["text"], blocks=message["blocks"])


def alert_messages(engine: Engine, settings: Settings, alert_id: int) -> list[dict[str, Any]]:
    """The drift-alert message ``alert_id`` was posted in, rendered as it stands now."""
    ctx = alerts.alert_context(engine, alert_id, privacy_floor=settings.privacy_floor)
    return render_messages("drift-alert", ctx, templates_dir=settings.templates_dir)


def update_alert_message(
    client: WebClient,
    engine: Engine,
    settings: Settings,
    alert: alerts.AlertView,
    *,
    channel: str,
    ts: str,
    posted_blocks: list[dict[str, Any]] | None = None,
) -> None:
    """Show who acknowledged or muted ``alert`` (and until when) in its message, in place;
    the chart posted inside it (an image block of ``posted_blocks``, the message's blocks
    as Slack sent them with the click) stays."""
    messages = alert_messages(engine, settings, alert.id)
    # A drift alert is one message; were it ever split, update the part that shows this alert.
    shown = escape_mrkdwn(alert.message)
    message = next(
        (m for m in messages if shown in blocks_text(m["blocks"])),
        messages[0],
    )
    blocks = keep_images(message["blocks"], posted_blocks)
    client.chat_update(channel=channel, ts=ts, text=message["text"], blocks=blocks)
