"""Making a proposal: validate the change, measure its impact on the latest data and
store it as pending.

Measuring loads the whole dataset. The CLI and the demo measure in place; Slack
passes ``queue_impact``, which stores the proposal with its impact pending and queues
the measurement for the worker in the same transaction (:mod:`commands.queue`), which
then calls :func:`commands.proposals.impact.measure_impact`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from commands.errors import Refused
from commands.lookup import find_segment
from commands.proposals.definition import (
    active_definitions,
    build_definition,
    validate_definition,
)
from commands.proposals.impact import measure, moves_members
from commands.proposals.text import USAGE
from commands.proposals.views import PENDING_IMPACT, ProposalView, proposal_view
from segments.errors import SegopsError
from segments.workspace import SegmentDef, Workspace
from store.db import session_scope
from store.models import Proposal, Segment, SegmentVersion

MAX_REASON = 2000


@dataclass
class PreparedProposal:
    """A validated, measured proposal not stored yet (:func:`store_proposal` stores it)."""

    segment_id: int
    segment: str
    base_version_id: int
    proposer: str
    kind: str
    changes: dict[str, Any]
    reason: str
    impact: dict[str, Any]
    definition: SegmentDef
    queue_impact: Any = None
    """Who to answer once the queued impact measurement is done (None: measured)."""


def prepare_proposal(
    engine: Engine,
    ws: Workspace | None,
    *,
    segment: str,
    proposer: str,
    kind: str,
    changes: dict[str, Any],
    reason: str,
    definitions: dict[str, SegmentDef] | None = None,
    queue_impact: Any = None,
) -> PreparedProposal:
    """Validate and measure a proposal without writing anything.

    ``definitions`` (active definitions by name) replaces the catalog's as what the new
    definition is checked against, for a file whose other segments change with it.
    ``queue_impact`` (a :class:`commands.queue.ReplyTo`): do not measure here; the impact
    is stored as pending and :func:`store_proposal` queues its measurement, answering
    that person when it is done.
    """
    reason = (reason or "").strip()
    proposer = (proposer or "").strip()
    if not proposer:
        raise SegopsError("a proposal needs a proposer")
    if len(reason) > MAX_REASON:
        raise SegopsError(
            f"the reason is too long ({len(reason)} characters, at most {MAX_REASON})"
        )
    with session_scope(engine) as session:
        row = find_segment(session, segment)
        if row.status == "archived":
            raise SegopsError(f"segment '{row.name}' is archived: nothing to propose")
        base = session.get(SegmentVersion, row.current_version_id)
        current = SegmentDef.model_validate(base.definition)
        if definitions is None:
            definitions = active_definitions(session)
        base_version_id = base.id
        segment_id = row.id
    if not reason:
        if current.tier == "core":
            raise Refused(
                f"segment '{current.name}' is core: changing it needs a written reason "
                "(reason: WHY)"
            )
        raise SegopsError(f"a proposal needs a reason (reason: WHY): {USAGE}")
    new = build_definition(current, kind, changes)
    if new.fingerprint() == current.fingerprint():
        raise SegopsError(f"the proposal does not change segment '{current.name}'")
    validate_definition(ws, current=current, new=new, definitions=definitions)
    queued = False
    if kind == "persona":
        impact: dict[str, Any] = {"note": "persona changes do not move members"}
    elif queue_impact is not None and moves_members(kind, current, new) and ws is not None:
        impact, queued = dict(PENDING_IMPACT), True
    else:
        impact = measure(engine, ws, kind=kind, current=current, new=new)
    return PreparedProposal(
        segment_id=segment_id,
        segment=current.name,
        base_version_id=base_version_id,
        proposer=proposer,
        kind=kind,
        changes=_stored_changes(current, new, kind, changes),
        reason=reason,
        impact=impact,
        definition=new,
        queue_impact=queue_impact if queued else None,
    )


def store_proposal(session: Session, prepared: PreparedProposal) -> Proposal:
    """Store a prepared proposal as pending (the caller's transaction), with its impact
    measurement queued for the worker when it was prepared with ``queue_impact``."""
    proposal = Proposal(
        segment_id=prepared.segment_id,
        base_version_id=prepared.base_version_id,
        proposer=prepared.proposer,
        kind=prepared.kind,
        changes=prepared.changes,
        reason=prepared.reason,
        impact=prepared.impact,
        status="pending",
    )
    session.add(proposal)
    session.flush()
    if prepared.queue_impact is not None:
        from commands.queue import add_preview

        add_preview(session, proposal_id=proposal.id, reply_to=prepared.queue_impact)
    return proposal


def propose(
    engine: Engine,
    ws: Workspace | None,
    *,
    segment: str,
    proposer: str,
    kind: str,
    changes: dict[str, Any],
    reason: str,
    queue_impact: Any = None,
) -> ProposalView:
    """Validate, measure and store a pending proposal; nothing is written on error.

    ``queue_impact``: see :func:`prepare_proposal` (Slack queues, the CLI measures).
    """
    prepared = prepare_proposal(
        engine,
        ws,
        segment=segment,
        proposer=proposer,
        kind=kind,
        changes=changes,
        reason=reason,
        queue_impact=queue_impact,
    )
    with session_scope(engine) as session:
        proposal = store_proposal(session, prepared)
        return proposal_view(session, proposal, session.get(Segment, prepared.segment_id))


def _stored_changes(
    current: SegmentDef, new: SegmentDef, kind: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """The changed fields in canonical form (rules as canonical text)."""
    before, after = current.canonical(), new.canonical()
    if kind == "persona":
        return {"persona": {k: after["persona"][k] for k in changes.get("persona", {})}}
    # Optional fields (a hypothesis) may be present on one side only.
    keys = [*after, *(k for k in before if k not in after)]
    return {k: after.get(k) for k in keys if after.get(k) != before.get(k)}
