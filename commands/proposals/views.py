"""Stored proposals as views for reviewers and Slack, the queries that find them, and
where a proposal was posted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, select

from commands.lookup import find_segment
from segments.errors import SegopsError
from store.db import session_scope
from store.models import OutboxMessage, Proposal, Segment, SegmentVersion

OUTBOX_KIND = "proposal"
OUTBOX_PREFIX = "proposal:"
"""Outbox kind and idempotency key prefix (``proposal:<id>``) of a queued proposal."""

PENDING_IMPACT: dict[str, Any] = {
    "pending": True,
    "note": "impact being measured on the latest data; this message will show it",
}
"""The stored impact of a proposal whose measurement is queued for the worker."""


@dataclass
class ProposalView:
    """A stored proposal with what a reviewer needs to decide."""

    id: int
    segment: str
    title: str
    tier: str
    owner: str
    approvers: list[str]
    kind: str
    proposer: str
    reason: str
    changes: dict[str, Any]
    impact: dict[str, Any] | None
    impact_note: str | None
    status: str
    base_version: int
    created_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    decision_via: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    applied_version: int | None = None
    segment_channel: str | None = None
    impact_pending: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DecisionView:
    """The outcome of a decision: enough for Slack to update the message in place."""

    proposal_id: int
    segment: str
    kind: str
    status: str
    decided_by: str | None
    decided_at: str | None
    decision_via: str | None
    channel: str | None
    message_ts: str | None
    version: int | None = None
    proposer: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _impact(stored: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    if stored and "size_now" in stored:
        return {k: stored[k] for k in ("size_now", "size_after", "joined", "left", "as_of")}, None
    return None, (stored or {}).get("note")


def proposal_view(session: Session, proposal: Proposal, segment: Segment) -> ProposalView:
    """``proposal`` on ``segment`` as a reviewer sees it."""
    versions = {
        v.id: v.version
        for v in session.exec(
            select(SegmentVersion).where(
                SegmentVersion.id.in_(  # type: ignore[union-attr]
                    [i for i in (proposal.base_version_id, proposal.applied_version_id) if i]
                )
            )
        ).all()
    }
    impact, note = _impact(proposal.impact)
    return ProposalView(
        id=proposal.id,
        segment=segment.name,
        title=segment.title,
        tier=segment.tier,
        owner=segment.owner,
        approvers=list(segment.approvers or []),
        kind=proposal.kind,
        proposer=proposal.proposer,
        reason=proposal.reason,
        changes=dict(proposal.changes),
        impact=impact,
        impact_note=note,
        status=proposal.status,
        base_version=versions.get(proposal.base_version_id, 0),
        created_at=_iso(proposal.created_at) or "",
        decided_by=proposal.decided_by,
        decided_at=_iso(proposal.decided_at),
        decision_via=proposal.decision_via,
        channel=proposal.channel,
        message_ts=proposal.message_ts,
        applied_version=versions.get(proposal.applied_version_id)
        if proposal.applied_version_id
        else None,
        segment_channel=segment.channel,
        impact_pending=bool((proposal.impact or {}).get("pending")),
    )


def decision_view(proposal: Proposal, segment_name: str, version: int | None) -> DecisionView:
    """The decision on ``proposal`` (``version``: the version it applied, if any)."""
    return DecisionView(
        proposal_id=proposal.id,
        segment=segment_name,
        kind=proposal.kind,
        status=proposal.status,
        decided_by=proposal.decided_by,
        decided_at=_iso(proposal.decided_at),
        decision_via=proposal.decision_via,
        channel=proposal.channel,
        message_ts=proposal.message_ts,
        version=version,
        proposer=proposal.proposer,
    )


def set_message(engine: Engine, proposal_id: int, channel: str, ts: str) -> None:
    """Remember where the proposal was posted (for reactions and in-place updates)."""
    with session_scope(engine) as session:
        done = session.exec(
            update(Proposal)
            .where(Proposal.id == proposal_id)
            .values(channel=channel, message_ts=ts)
        ).rowcount
        if done != 1:
            raise SegopsError(f"no proposal #{proposal_id}")


def find_by_message(engine: Engine, channel: str, ts: str) -> int | None:
    """The proposal posted as message ``ts`` in ``channel``, if any: posted by the Slack
    app itself, or queued through the outbox (a proposal made by ``segops apply``)."""
    with session_scope(engine) as session:
        found = session.exec(
            select(Proposal.id).where(Proposal.channel == channel, Proposal.message_ts == ts)
        ).first()
        if found is not None:
            return found
        key = session.exec(
            select(OutboxMessage.idempotency_key).where(
                OutboxMessage.kind == OUTBOX_KIND,
                OutboxMessage.ts == ts,
                OutboxMessage.thread_key.is_(None),  # type: ignore[union-attr]
            )
        ).first()
        if key is None or not key.startswith(OUTBOX_PREFIX):
            return None
        number = key.removeprefix(OUTBOX_PREFIX)
        return int(number) if number.isdigit() else None


def get_proposal(engine: Engine, proposal_id: int) -> ProposalView:
    """One proposal by id."""
    with session_scope(engine) as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise SegopsError(f"no proposal #{proposal_id}")
        return proposal_view(session, proposal, session.get(Segment, proposal.segment_id))


def _pending(session: Session, *extra: Any) -> list[tuple[Proposal, Segment]]:
    return list(
        session.exec(
            select(Proposal, Segment)
            .join(Segment, Segment.id == Proposal.segment_id)
            .where(Proposal.status == "pending", *extra)
            .order_by(Proposal.id)  # type: ignore[arg-type]
        ).all()
    )


def list_proposals(
    engine: Engine, *, status: str | None = "pending", segment: str | None = None
) -> list[ProposalView]:
    """Proposals, oldest first: those with ``status`` (None: every status), on ``segment``."""
    statuses = ("pending", "approved", "rejected", "stale")
    if status is not None and status not in statuses:
        raise SegopsError(f"status {status!r} must be one of {', '.join(statuses)}")
    with session_scope(engine) as session:
        query = select(Proposal, Segment).join(Segment, Segment.id == Proposal.segment_id)
        if status is not None:
            query = query.where(Proposal.status == status)
        if segment is not None:
            query = query.where(Segment.id == find_segment(session, segment).id)
        rows = session.exec(query.order_by(Proposal.id)).all()  # type: ignore[arg-type]
        return [proposal_view(session, p, s) for p, s in rows]


def pending_for(engine: Engine, user: str) -> list[ProposalView]:
    """Pending proposals ``user`` may decide on (owner or approver), oldest first."""
    with session_scope(engine) as session:
        return [
            proposal_view(session, p, s)
            for p, s in _pending(session)
            if user == s.owner or user in (s.approvers or [])
        ]


def pending_older_than(engine: Engine, days: float) -> list[ProposalView]:
    """Pending proposals created more than ``days`` days ago (for reminders)."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    with session_scope(engine) as session:
        return [
            proposal_view(session, p, s) for p, s in _pending(session, Proposal.created_at < cutoff)
        ]


def proposal_context(
    engine: Engine, proposal_id: int, *, reactions: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ``proposal`` brief context: the diff old -> new, impact and decision."""
    with session_scope(engine) as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise SegopsError(f"no proposal #{proposal_id}")
        return context_for(session, proposal, reactions=reactions)


def context_for(
    session: Session, proposal: Proposal, *, reactions: dict[str, str] | None = None
) -> dict[str, Any]:
    """:func:`proposal_context` of a loaded ``proposal``, in the caller's session."""
    segment = session.get(Segment, proposal.segment_id)
    base = session.get(SegmentVersion, proposal.base_version_id)
    applied = (
        session.get(SegmentVersion, proposal.applied_version_id)
        if proposal.applied_version_id
        else None
    )
    before = base.definition
    diff = []
    for key, value in proposal.changes.items():
        if key == "persona" and isinstance(value, dict):
            for sub, after in value.items():
                diff.append(
                    {
                        "field": f"persona.{sub}",
                        "before": (before.get("persona") or {}).get(sub),
                        "after": after,
                    }
                )
        else:
            diff.append({"field": key, "before": before.get(key), "after": value})
    impact, note = _impact(proposal.impact)
    ctx: dict[str, Any] = {
        "proposal": {
            "id": proposal.id,
            "kind": proposal.kind,
            "status": proposal.status,
            "proposer": proposal.proposer,
            "reason": proposal.reason,
            "created_at": _iso(proposal.created_at),
            "decided_by": proposal.decided_by,
            "decided_at": _iso(proposal.decided_at),
            "decision_via": proposal.decision_via,
            "changes": diff,
            "impact": impact,
            "impact_note": note,
            "applied_version": applied.version if applied else None,
        },
        "segment": {
            "name": segment.name,
            "title": segment.title,
            "tier": segment.tier,
            "owner": segment.owner,
            "approvers": list(segment.approvers or []),
        },
    }
    if reactions:
        ctx["reactions"] = dict(reactions)
    return ctx
