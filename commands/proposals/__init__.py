"""Change proposals: propose an edit, rename, archive or persona change; decide it once.

The path of one proposal (DESIGN.md):

1. :func:`propose` builds the new definition from the segment's current version plus
   the requested changes, validates it exactly like ``apply`` does (the catalog's
   active definitions with this one replaced go through ``check_workspace``), measures
   its impact on the latest data (``commands.refresh.preview``) and stores a pending
   :class:`store.models.Proposal` against the current version.
2. The Slack layer posts it and calls :func:`set_message`; a reaction finds it again
   with :func:`find_by_message`.
3. :func:`decide` lets only the owner or a listed approver decide, never the proposer
   alone (the owner may approve their own change on a non-core segment). The decision
   is claimed with ``UPDATE proposal SET status=... WHERE id=:id AND status='pending'``
   and the segment's version is checked with a conditional update in the same
   transaction, so across any number of processes exactly one decision wins; the loser
   gets :class:`AlreadyDecided`. A proposal whose segment changed since it was made is
   marked stale and refused. Approving records a new ``SegmentVersion`` (author =
   proposer, approver = decider, reason = the proposal's reason) in that transaction.

The Slack form parsed by :func:`parse_proposal_text`::

    trial rule: plan = 'trial' and seats >= 3 reason: reps ignore one-seat trials
    trial rename: trials reason: plural like the others
    trial archive reason: replaced by self-serve

The modules, by job: :mod:`.text` (the Slack form), :mod:`.definition` (building and
validating the proposed definition), :mod:`.proposing` (:func:`propose` and the impact),
:mod:`.deciding` (:func:`authorise`, :func:`decide`), :mod:`.views` (views and queries).
"""

from __future__ import annotations

from commands.proposals.deciding import CHANGE_KIND, VIAS, authorise, decide
from commands.proposals.definition import (
    EDITABLE,
    KINDS,
    build_definition,
    validate_definition,
)
from commands.proposals.impact import measure_impact
from commands.proposals.proposing import (
    MAX_REASON,
    PreparedProposal,
    prepare_proposal,
    propose,
    store_proposal,
)
from commands.proposals.text import (
    DERIVE_USAGE,
    USAGE,
    DeriveRequest,
    ProposalRequest,
    parse_derive_text,
    parse_proposal_text,
)
from commands.proposals.views import (
    DecisionView,
    ProposalView,
    find_by_message,
    get_proposal,
    list_proposals,
    pending_for,
    pending_older_than,
    proposal_context,
    set_message,
)

__all__ = [
    "CHANGE_KIND",
    "EDITABLE",
    "KINDS",
    "MAX_REASON",
    "USAGE",
    "VIAS",
    "DecisionView",
    "ProposalRequest",
    "PreparedProposal",
    "ProposalView",
    "authorise",
    "build_definition",
    "decide",
    "find_by_message",
    "get_proposal",
    "list_proposals",
    "measure_impact",
    "parse_proposal_text",
    "parse_derive_text",
    "DeriveRequest",
    "DERIVE_USAGE",
    "pending_for",
    "pending_older_than",
    "prepare_proposal",
    "proposal_context",
    "propose",
    "set_message",
    "store_proposal",
    "validate_definition",
]
