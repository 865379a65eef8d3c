"""Reminders of proposals left pending (``proposal-reminder.j2``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from briefs.render import renderer
from commands.jobs.clock import utc
from store.db import session_scope
from store.models import Proposal, Segment
from store.outbox import add_message, is_queued

REMIND_AFTER = timedelta(days=2)


def proposal_reminders(
    engine: Engine,
    *,
    now: datetime | None = None,
    older_than: timedelta = REMIND_AFTER,
    templates_dir: Path | None = None,
) -> list[int]:
    """Remind owners of proposals pending longer than ``older_than``; the reminded ids.

    One reminder per proposal per full day of waiting (keyed by the days waited),
    sent to the owner with the proposal and its Approve / Reject buttons. Proposals
    whose segment changed since (they would be stale on decision) are skipped.
    """
    from commands.proposals import proposal_context

    now = utc(now)
    with session_scope(engine) as session:
        rows = session.exec(
            select(Proposal, Segment)
            .join(Segment, Segment.id == Proposal.segment_id)
            .where(Proposal.status == "pending", Proposal.created_at <= now - older_than)
            .order_by(Proposal.id)  # type: ignore[arg-type]
        ).all()
        due = [
            (p.id, p.created_at, s.owner, list(s.approvers or []))
            for p, s in rows
            if p.base_version_id == s.current_version_id and s.status == "active"
        ]
    reminded = []
    for proposal_id, created_at, owner, approvers in due:
        days = int((now - created_at) / timedelta(days=1))
        key = f"proposal-reminder:{proposal_id}:{days}"
        with session_scope(engine) as session:
            if is_queued(session, key=key):
                continue
        ctx = proposal_context(engine, proposal_id)
        messages = renderer(templates_dir).render_messages(
            "proposal-reminder", {**ctx, "days": days, "deciders": [owner, *approvers]}
        )
        with session_scope(engine) as session:
            if add_message(
                session,
                key=key,
                kind="proposal_reminder",
                channel=owner,
                messages=messages,
                fallback_user=owner,
            ):
                reminded.append(proposal_id)
    return reminded
