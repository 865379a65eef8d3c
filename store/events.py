"""Queries on ``slack_event``: claiming an Events API delivery, marking it processed, pruning.

Every function takes the caller's ``Session`` and never commits; the caller owns the
transaction (``with session_scope(engine) as session:``). The claim protocol built
on them is described in :mod:`bot.dedupe`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session

from store.models import SlackEvent


def add_claim(session: Session, *, event_id: str, received_at: datetime) -> None:
    """Insert the claim row; raises ``IntegrityError`` when ``event_id`` is already there."""
    session.add(SlackEvent(event_id=event_id, received_at=received_at))
    session.flush()


def find(session: Session, *, event_id: str) -> SlackEvent | None:
    """The row of ``event_id``, or None."""
    return session.get(SlackEvent, event_id)


def take_over(session: Session, *, event_id: str, claimed_at: datetime, now: datetime) -> bool:
    """Move an unprocessed claim made at ``claimed_at`` to ``now`` (compare-and-set).

    False when the row was processed or claimed again meanwhile.
    """
    taken = session.execute(
        update(SlackEvent)
        .where(
            SlackEvent.event_id == event_id,
            SlackEvent.processed_at.is_(None),  # type: ignore[union-attr]
            SlackEvent.received_at == claimed_at,
        )
        .values(received_at=now)
    )
    return taken.rowcount == 1


def mark_processed(session: Session, *, event_id: str, now: datetime) -> None:
    """Set ``processed_at`` of ``event_id``."""
    session.execute(
        update(SlackEvent).where(SlackEvent.event_id == event_id).values(processed_at=now)
    )


def is_processed(session: Session, *, event_id: str) -> bool:
    """Whether ``event_id`` has a row with ``processed_at`` set."""
    row = session.get(SlackEvent, event_id)
    return row is not None and row.processed_at is not None


def prune(session: Session, *, before: datetime) -> int:
    """Delete the rows received before ``before``; the number deleted."""
    result = session.execute(delete(SlackEvent).where(SlackEvent.received_at < before))
    return result.rowcount
