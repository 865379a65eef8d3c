"""Deciding a proposal: who may decide (:func:`authorise`), claiming the decision exactly
once, refusing stale proposals, and applying an approved change as a new version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, select

from briefs.render import renderer
from commands.catalog import record_version
from commands.errors import AlreadyDecided, NotAuthorised, NotSaved, StaleProposal, person
from commands.proposals.definition import (
    active_definitions,
    build_definition,
    check_references,
)
from commands.proposals.views import OUTBOX_PREFIX, DecisionView, context_for, decision_view
from commands.renaming import rewrite_dependents
from segments.errors import SegopsError
from segments.workspace import SegmentDef, Workspace
from store.db import WRITE_BUDGET, DatabaseBusy, session_scope, write
from store.models import OutboxMessage, Proposal, Segment, SegmentVersion
from store.outbox import EDIT_KEY, EDIT_TS, add_edit

VIAS = ("button", "reaction", "cli")
CHANGE_KIND = {"edit": "edit", "persona": "edit", "rename": "rename", "archive": "archive"}


def _people(users: list[str]) -> str:
    return ", ".join(person(u) for u in users)


def authorise(
    *,
    segment: Segment,
    proposal_id: int | None,
    proposer: str,
    user: str,
    approve: bool,
    subject: str | None = None,
) -> None:
    """Raise NotAuthorised unless ``user`` may take this decision.

    ``subject`` names what is decided in the message (``proposal #N`` by default; ``segops
    apply --approved-by`` decides "the change to segment 'x'" with no proposal).
    """
    subject = subject or f"proposal #{proposal_id}"
    approvers = list(segment.approvers or [])
    is_owner = user == segment.owner
    if not is_owner and user not in approvers:
        who = f"the owner {person(segment.owner)}"
        if approvers:
            who += f" or approvers {_people(approvers)}"
        raise NotAuthorised(
            f"only {who} can decide on {subject}", users=[segment.owner, *approvers]
        )
    if approve and user == proposer and not (is_owner and segment.tier != "core"):
        others = [u for u in [segment.owner, *approvers] if u != user]
        ask = f": ask {_people(others)}" if others else ""
        why = "core segment" if segment.tier == "core" else "segment you do not own"
        raise NotAuthorised(
            f"you proposed {subject.removeprefix('proposal ')} and cannot approve your own "
            f"change to a {why}{ask}",
            users=others,
        )


def _already(proposal: Proposal, segment_name: str) -> AlreadyDecided:
    by = f" by {person(proposal.decided_by)}" if proposal.decided_by else ""
    error = AlreadyDecided(
        f"proposal #{proposal.id} was already {proposal.status}{by}",
        users=[proposal.decided_by] if proposal.decided_by else [],
    )
    error.decision = decision_view(proposal, segment_name, None)  # type: ignore[attr-defined]
    return error


def decide(
    engine: Engine,
    *,
    proposal_id: int,
    user: str,
    approve: bool,
    via: str,
    budget: float = WRITE_BUDGET,
    ws: Workspace | None = None,
    templates_dir: Path | None = None,
    reactions: dict[str, str] | None = None,
) -> DecisionView:
    """Approve or reject a pending proposal exactly once.

    Raises NotAuthorised, AlreadyDecided (someone decided first: Slack treats it as a
    quiet no-op), or StaleProposal (the segment changed since; the proposal is marked
    stale). The exceptions carry ``.decision`` where a message update is useful. The
    deciding transaction is retried while the database is busy, for ``budget`` seconds;
    then :class:`NotSaved` says the decision was not recorded.

    In the same transaction, an approval with the workspace ``ws`` records the live/batch
    classification of the new version (:func:`commands.live.record_classifications`), and
    a decision taken outside Slack (``via="cli"``) queues the update of the proposal's
    Slack message through the outbox (rendered with ``templates_dir`` and ``reactions``),
    so its buttons give way to the decision; a click or reaction updates it itself.
    """
    if via not in VIAS:
        raise SegopsError(f"decision via {via!r} must be one of {', '.join(VIAS)}")
    with session_scope(engine) as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise SegopsError(f"no proposal #{proposal_id}")
        segment = session.get(Segment, proposal.segment_id)
        authorise(
            segment=segment,
            proposal_id=proposal.id,
            proposer=proposal.proposer,
            user=user,
            approve=approve,
        )
        if proposal.status == "stale":
            raise _stale(proposal.id, segment.name, decision_view(proposal, segment.name, None))
        if proposal.status != "pending":
            raise _already(proposal, segment.name)

    now = datetime.now(UTC)
    status = "approved" if approve else "rejected"
    segment_id = segment.id

    def work(session: Session) -> tuple[DecisionView, bool]:
        stale = False
        version_number: int | None = None
        # Claim the decision first: the one writer whose conditional update matches wins.
        claimed = session.exec(
            update(Proposal)
            .where(Proposal.id == proposal_id, Proposal.status == "pending")
            .values(status=status, decided_by=user, decided_at=now, decision_via=via)
        ).rowcount
        if claimed != 1:
            session.rollback()
            found = session.get(Proposal, proposal_id)
            raise _already(found, session.get(Segment, found.segment_id).name)
        found = session.get(Proposal, proposal_id)
        session.refresh(found)
        # Lock the segment row at the version the proposal was made against.
        current = session.exec(
            update(Segment)
            .where(Segment.id == segment_id, Segment.current_version_id == found.base_version_id)
            .values(current_version_id=Segment.current_version_id)
        ).rowcount
        if current != 1:
            stale = True
            session.exec(
                update(Proposal)
                .where(Proposal.id == proposal_id)
                .values(status="stale", decided_by=None, decision_via=None, decided_at=now)
            )
        elif approve:
            version_number = _apply(session, proposal_id=proposal_id, approver=user)
            if ws is not None:
                from commands.live import record_classifications

                record_classifications(session, ws)
        found = session.get(Proposal, proposal_id)
        session.refresh(found)
        row = session.get(Segment, found.segment_id)
        session.refresh(row)
        if via == "cli":
            queue_message_update(session, found, templates_dir=templates_dir, reactions=reactions)
        return decision_view(found, row.name, version_number), stale

    try:
        decision, stale = write(engine, work, budget=budget)
    except DatabaseBusy as busy:
        raise NotSaved(
            f"{busy}: your decision on proposal #{proposal_id} was not recorded; try again"
        ) from None
    if stale:
        raise _stale(proposal_id, decision.segment, decision)
    return decision


UPDATE_KIND = "proposal_update"


def queue_message_update(
    session: Session,
    proposal: Proposal,
    *,
    templates_dir: Path | None = None,
    reactions: dict[str, str] | None = None,
) -> OutboxMessage | None:
    """Queue the proposal's Slack message as it stands now (decided or stale, without
    buttons) to replace the posted one: the message the Slack app posted
    (``Proposal.message_ts``), else the one queued through the outbox (edited once it is
    sent). Nothing when it was never posted nor queued. Does not commit."""
    if proposal.channel and proposal.message_ts:
        channel, edits = proposal.channel, f"{EDIT_TS}{proposal.message_ts}"
    else:
        key = f"{OUTBOX_PREFIX}{proposal.id}"
        queued = session.exec(
            select(OutboxMessage.channel).where(OutboxMessage.idempotency_key == key)
        ).first()
        if queued is None:
            return None
        channel, edits = queued, f"{EDIT_KEY}{key}"
    ctx = context_for(session, proposal, reactions=reactions)
    message = renderer(templates_dir).render_messages("proposal", ctx)[0]
    return add_edit(
        session,
        key=f"{OUTBOX_PREFIX}{proposal.id}:{proposal.status}",
        kind=UPDATE_KIND,
        channel=channel,
        edits=edits,
        message=message,
    )


def _stale(proposal_id: int, segment_name: str, decision: DecisionView) -> StaleProposal:
    error = StaleProposal(
        f"proposal #{proposal_id} is stale: segment '{segment_name}' changed since it "
        "was made; propose the change again against the current version"
    )
    error.decision = decision  # type: ignore[attr-defined]
    return error


def _apply(session: Session, *, proposal_id: int, approver: str) -> int:
    """Record the approved change as the segment's next version (same transaction)."""
    proposal = session.get(Proposal, proposal_id)
    session.refresh(proposal)
    segment = session.get(Segment, proposal.segment_id)
    session.refresh(segment)
    base = session.get(SegmentVersion, proposal.base_version_id)
    current = SegmentDef.model_validate(base.definition)
    new = build_definition(current, proposal.kind, _replayable(proposal))
    if new.name != current.name or new.status == "archived":
        definitions = active_definitions(session)
        if new.name != current.name and new.name in definitions:
            raise SegopsError(f"a segment named '{new.name}' already exists")
        check_references(definitions, current, new)
    version = record_version(
        session,
        segment=segment,
        definition=new,
        change_kind=CHANGE_KIND[proposal.kind],
        author=proposal.proposer,
        approver=approver,
        reason=proposal.reason,
    )
    if new.name != current.name:
        rewrite_dependents(
            session, old=current.name, new=new.name, author=proposal.proposer, approver=approver
        )
    session.exec(
        update(Proposal).where(Proposal.id == proposal_id).values(applied_version_id=version.id)
    )
    return version.version


def _replayable(proposal: Proposal) -> dict[str, Any]:
    changes = dict(proposal.changes)
    if proposal.kind == "archive":
        return {"status": "archived"}
    return changes
