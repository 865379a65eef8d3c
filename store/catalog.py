"""Store functions of the catalog tables: segments and their versions.

Keyword-only after the session, never committing: the use case owns the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from store.models import Segment, SegmentVersion


def segment_by_name(session: Session, *, name: str) -> Segment | None:
    """The segment called ``name`` (archived ones included), or None."""
    return session.exec(select(Segment).where(Segment.name == name)).first()


def segment_names(session: Session) -> list[str]:
    """Every segment name, archived ones included."""
    return list(session.exec(select(Segment.name)).all())


def current_version(session: Session, *, segment: Segment) -> SegmentVersion | None:
    """The version the segment points at (None only for a segment half-created)."""
    return session.get(SegmentVersion, segment.current_version_id)


def scheduling_rows(session: Session) -> list[tuple[Any, ...]]:
    """(name, status, cadence, current version id) of every segment, by name."""
    rows = session.exec(
        select(Segment.name, Segment.status, Segment.cadence, Segment.current_version_id).order_by(
            Segment.name
        )
    ).all()
    return [tuple(row) for row in rows]
