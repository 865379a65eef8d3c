"""Button clicks, one module per button: proposal decisions, sharing a brief, drift alerts.

Action ids are the ones the ``briefs`` templates put on their buttons. Every click is
acked at once; the work runs in a lazy function.

* ``proposal_approve`` / ``proposal_reject``: :mod:`.proposal_decision`
* ``persona_share``: :mod:`.brief_share`
* ``alert_ack`` / ``alert_mute``: :mod:`.alert_acknowledge`, :mod:`.alert_mute`
* ``alert_propose``: :mod:`.alert_propose`
* ``sync_approve``: :mod:`.sync_approve`
* ``agenda_approve_N`` / ``agenda_reject_N`` / ``agenda_ack_N`` / ``agenda_propose_N``:
  :mod:`.agenda_actions` (the last through :mod:`.alert_propose`)
"""

from __future__ import annotations

from slack_bolt import App
from sqlalchemy import Engine

from bot.listeners.actions.agenda_actions import AGENDA_ACTION, AGENDA_PROPOSE, AgendaAction
from bot.listeners.actions.alert_acknowledge import AlertAcknowledge
from bot.listeners.actions.alert_mute import AlertMute
from bot.listeners.actions.alert_propose import AlertPropose
from bot.listeners.actions.brief_share import BriefShare
from bot.listeners.actions.payload import ack_now
from bot.listeners.actions.proposal_decision import PROPOSAL_ACTIONS, ProposalDecision
from bot.listeners.actions.sync_approve import SyncApprove
from commands.settings import Settings

ALERT_ACTIONS = ("alert_ack", "alert_propose", "alert_mute")
ACTIONS = (*PROPOSAL_ACTIONS, "persona_share", *ALERT_ACTIONS, "sync_approve")


def register(app: App, *, engine: Engine, settings: Settings) -> None:
    """Wire the proposal, brief and alert buttons."""
    decision = ProposalDecision(engine, settings)
    for action_id in PROPOSAL_ACTIONS:
        app.action(action_id)(ack=ack_now, lazy=[decision.run])
    app.action("persona_share")(ack=ack_now, lazy=[BriefShare(engine, settings).run])
    app.action("alert_ack")(ack=ack_now, lazy=[AlertAcknowledge(engine, settings).run])
    app.action("alert_mute")(ack=ack_now, lazy=[AlertMute(engine, settings).run])
    app.action("alert_propose")(ack=ack_now, lazy=[AlertPropose(engine, settings).run])
    app.action("sync_approve")(ack=ack_now, lazy=[SyncApprove(engine, settings).run])
    app.action(AGENDA_ACTION)(ack=ack_now, lazy=[AgendaAction(engine, settings).run])
    app.action(AGENDA_PROPOSE)(ack=ack_now, lazy=[AlertPropose(engine, settings).run])
