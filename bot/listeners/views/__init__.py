"""Modal submissions: field feedback and change proposals, one module each.

The ack checks what can be checked at once and answers a problem as a field error
(``response_action: errors``), so the form stays open for the user to fix it and
nothing is written: an empty or too long observation, an unknown or archived segment;
a proposal without a reason or a rename without a name. A valid submission closes the
modal and is saved in a lazy function; the outcome, or a problem found then, reaches
the user as an ephemeral message in the channel the form was opened from, or as a DM.
"""

from __future__ import annotations

from slack_bolt import App
from sqlalchemy import Engine

from bot.listeners.views.feedback_submission import FeedbackSubmission
from bot.listeners.views.modals import FEEDBACK_CALLBACK, PROPOSAL_CALLBACK
from bot.listeners.views.proposal_submission import ProposalSubmission
from commands.settings import Settings

VIEWS = (FEEDBACK_CALLBACK, PROPOSAL_CALLBACK)


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the feedback and proposal form submissions."""
    feedback = FeedbackSubmission(engine, settings)
    proposal = ProposalSubmission(engine, settings)
    app.view(FEEDBACK_CALLBACK)(ack=feedback.ack, lazy=[feedback.run])
    app.view(PROPOSAL_CALLBACK)(ack=proposal.ack, lazy=[proposal.run])
